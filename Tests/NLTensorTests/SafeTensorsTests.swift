import Foundation
import NLTensor
import NLTestSupport
import Testing

struct SafeTensorsTests {
    let directory = scratchDirectory("safetensors", made: true)

    @Test func roundTripsEveryDtypeAndMetadata() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var file = SafeTensors()
        file.set("weights", Tensor(shape: [2, 3], values: [1, -2, 3.5, 0, 1e-8, 6]))
        file.set("count", int64s: [Int64.max], shape: [])
        file.set("pixels", uint8s: Data([0, 255, 7]), shape: [3])
        file.metadata = ["config": "[train]\nlr = 0.01 # \"quoted\"\t\\", "epoch": "3"]
        let path = directory + "/roundtrip.safetensors"
        try file.write(to: path)
        let read = try SafeTensors(contentsOf: path)
        #expect(read.names == ["count", "pixels", "weights"])
        #expect(read.tensor("weights")!.array == [1, -2, 3.5, 0, 1e-8, 6])
        #expect(read.entries["count"]!.shape == [] && read.int64s("count") == [Int64.max])
        #expect(read.uint8s("pixels") == [0, 255, 7])
        #expect(read.metadata == file.metadata)
        #expect(read.serialized() == file.serialized())
        // Eight-byte dtypes first, so each tensor is aligned to its element size.
        let bytes = file.serialized()
        let headerLength = bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        #expect(headerLength % 8 == 0)
    }

    @Test func readsWhatPythonWrote() throws {
        // A fixture written by PyTorch's safetensors: F32 tensors, an I64 scalar, string metadata.
        let path =
            fixtureDirectory().replacingOccurrences(of: "NLTensorTests", with: "NLLayersTests")
            + "/batchnorm3d_train.safetensors"
        let file = try SafeTensors(contentsOf: path)
        #expect(file.tensor("input")!.shape == [3, 6, 3, 4, 5])
        #expect(file.int64s("param.num_batches_tracked") == [0])
        #expect(file.int64s("after.num_batches_tracked") == [1])
        #expect(file.metadata["layer"] == "batchnorm3d")
    }

    /// F16 and BF16 (as Hugging Face Hub files and `model.half()` state dicts are) read as Float32:
    /// normal, subnormal, largest and infinite values, bit patterns as the formats define them.
    @Test func readsHalfPrecisionAsFloat32() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let f16: [UInt16] = [0x3C00, 0xC100, 0x7BFF, 0x0001, 0x7C00],
            bf16: [UInt16] = [0x3F80, 0xC000, 0x4049, 0x0001, 0xFF80]
        var data = handMade(
            #"{"bf":{"dtype":"BF16","shape":[5],"data_offsets":[0,10]},"h":{"dtype":"F16","shape":[5],"data_offsets":[10,20]}}"#,
            bytes: 0)
        for bits in bf16 + f16 { withUnsafeBytes(of: bits.littleEndian) { data.append(contentsOf: $0) } }
        let path = directory + "/half.safetensors"
        try data.write(to: URL(fileURLWithPath: path))
        let file = try SafeTensors(contentsOf: path)
        #expect(file.tensor("h")!.array == [1, -2.5, 65504, 0x1p-24, .infinity])
        #expect(file.tensor("bf")!.array == [1, -2, 3.140625, 0x1p-133, -.infinity])
    }

    @Test func rejectsDamagedFilesNamingThem() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var file = SafeTensors()
        file.set("x", Tensor(shape: [4], values: [1, 2, 3, 4]))
        let good = file.serialized()
        let cases: [(String, Data)] = [
            ("empty", Data()),
            ("truncated", good.prefix(good.count - 3)),
            ("huge header", Data([0xff, 0xff, 0, 0, 0, 0, 0, 0]) + good.dropFirst(8)),
            ("not json", Data([4, 0, 0, 0, 0, 0, 0, 0]) + Data("abcd".utf8)),
            // What the format forbids: an element count that overflows, overlaps, holes, a key twice.
            (
                "overflowing shape",
                handMade(#"{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#, bytes: 16)
            ),
            (
                "overlapping",
                handMade(
                    #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                    bytes: 12)
            ),
            (
                "hole",
                handMade(
                    #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                    bytes: 12)
            ),
            (
                "duplicate key",
                handMade(
                    #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                    bytes: 4)
            ),
        ]
        for (name, bytes) in cases {
            let path = directory + "/\(name).safetensors"
            try bytes.write(to: URL(fileURLWithPath: path))
            #expect(throws: SafeTensorsError.self, "\(name)") { try SafeTensors(contentsOf: path) }
            do { _ = try SafeTensors(contentsOf: path) } catch { #expect("\(error)".contains(path)) }
        }
        // Files that cannot be read say why, in words: missing, a directory.
        for (path, words) in [
            (directory + "/missing.safetensors", "no such checkpoint"),
            (directory, "is a directory, not the checkpoint"),
        ] {
            do { _ = try SafeTensors(contentsOf: path, what: "checkpoint"); Issue.record("read \(path)") } catch {
                #expect("\(error)" == "\(path): \(words)")
            }
        }
    }
}

/// A safetensors file from a header written by hand and `bytes` bytes of data.
func handMade(_ header: String, bytes: Int) -> Data {
    var data = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Data($0) }
    data.append(Data(header.utf8))
    data.append(Data(count: bytes))
    return data
}
