import Foundation

/// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
/// header length, a JSON header naming each tensor's dtype, shape and byte range, an optional
/// `__metadata__` string map, then the raw little-endian data. Reads what Python's safetensors
/// writes and writes what it reads (tensors sorted by dtype size then name, header padded to 8).
public struct SafeTensors {
    /// The dtypes read. Half precision (F16, and BF16 as Hugging Face Hub files often are) is
    /// read as Float32, as PyTorch's load_state_dict copies it into float32 parameters.
    public enum DType: String, Sendable {
        case f32 = "F32", f64 = "F64", f16 = "F16", bf16 = "BF16", i64 = "I64", u8 = "U8"
        public var size: Int {
            switch self {
            case .f32: 4
            case .f64, .i64: 8
            case .f16, .bf16: 2
            case .u8: 1
            }
        }
        public var isFloatingPoint: Bool { [.f32, .f64, .f16, .bf16].contains(self) }
    }

    public struct Entry: Sendable {
        public var dtype: DType
        public var shape: [Int]
        /// Raw little-endian bytes, `shape.product * dtype.size` of them.
        public var bytes: Data
    }

    public var entries: [String: Entry] = [:]
    public var metadata: [String: String] = [:]

    public init() {}

    public var names: [String] { entries.keys.sorted() }

    // MARK: Reading

    /// Reads the whole file into memory first: a mapped file that another process truncates
    /// while it is read (a checkpoint being replaced by hand, a full disk) kills the reader with
    /// SIGBUS, where a read sees the bytes it got.
    public init(contentsOf path: String, what: String = "safetensors file") throws {
        try self.init(data: Files.read(path, what: what), path: path)
    }

    /// Which of Python's formats a file that is not safetensors is in, when its first bytes tell:
    /// torch.save writes a zip archive (since 1.6) or a bare pickle, and Caffe2's blob files are
    /// pickles. Weights files are read in both (ForeignWeights); other inputs are refused by name.
    public static func pyTorchFormat(of data: Data) -> String? {
        if data.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            return "a zip archive, as PyTorch's torch.save writes (.pth)"
        }
        guard data.count >= 2, let first = data.first, let last = data.last else { return nil }
        // PROTO 2 to 5, as torch.save has written since PyTorch 0.1, or protocols 0 and 1 (Python 2's
        // cPickle.dump), which begin with MARK, EMPTY_DICT or EMPTY_LIST and end with STOP: a file that
        // merely begins with one of those bytes is not called a pickle.
        if first == 0x80 && (2...5).contains(data[data.startIndex + 1])
            || [UInt8(ascii: "("), UInt8(ascii: "}"), UInt8(ascii: "]")].contains(first) && last == UInt8(ascii: ".")
        {
            return "a Python pickle, as older PyTorch's torch.save and Caffe2 write (.pth, .pkl)"
        }
        return nil
    }

    /// Parses a whole safetensors file; `path` only names it in errors.
    public init(data: Data, path: String) throws {
        func fail(_ problem: String) -> SafeTensorsError {
            guard let format = Self.pyTorchFormat(of: data) else {
                return SafeTensorsError(path: path, problem: problem)
            }
            return SafeTensorsError(
                path: path, pyTorchFormat: format, advice: "save its tensors as one with safetensors.torch.save_file")
        }
        guard data.count >= 8 else { throw fail("file is \(data.count) bytes, too short for a safetensors header") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) {
            $0 | UInt64($1.element) << (8 * UInt64($1.offset))
        }
        guard headerLength <= UInt64(data.count - 8) else {
            throw fail("header length \(headerLength) runs past the end of the \(data.count)-byte file")
        }
        let dataStart = data.startIndex + 8 + Int(headerLength)
        let header = data[(data.startIndex + 8)..<dataStart]
        guard let json = try? JSONSerialization.jsonObject(with: header), let object = json as? [String: Any] else {
            throw fail("header is not a JSON object")
        }
        if let duplicate = Self.duplicateKey(in: header) { throw fail("the header names '\(duplicate)' twice") }
        let payload = data.count - 8 - Int(headerLength)
        for (name, value) in object {
            if name == "__metadata__" {
                guard let map = value as? [String: String] else { throw fail("__metadata__ is not a map of strings") }
                metadata = map
                continue
            }
            guard let info = value as? [String: Any], let dtypeName = info["dtype"] as? String,
                let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2
            else { throw fail("tensor '\(name)' lacks a dtype, shape or data_offsets") }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw fail("tensor '\(name)' has dtype \(dtypeName); supported: F32, F64, F16, BF16, I64, U8")
            }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= payload else {
                throw fail("tensor '\(name)' has a bad shape or byte range")
            }
            // The element count of a hostile shape can overflow: multiply with a check.
            let bytes = (shape + [dtype.size]).reduce(Optional(1)) { product, d in
                product.flatMap { p in
                    let (r, overflow) = p.multipliedReportingOverflow(by: d); return overflow ? nil : r
                }
            }
            guard bytes == offsets[1] - offsets[0] else {
                throw fail("tensor '\(name)' has \(offsets[1] - offsets[0]) bytes for shape \(shape) of \(dtypeName)")
            }
            entries[name] = Entry(
                dtype: dtype, shape: shape,
                bytes: data[(dataStart + offsets[0])..<(dataStart + offsets[1])])
        }
        // The format's rule: the tensors cover the data without overlaps or holes.
        var end = 0
        for (name, entry) in entries.sorted(by: { $0.value.bytes.startIndex < $1.value.bytes.startIndex }) {
            let start = entry.bytes.startIndex - dataStart
            guard start == end else {
                throw fail(
                    start < end
                        ? "tensor '\(name)' overlaps the tensor before it"
                        : "the data has a hole before tensor '\(name)'")
            }
            end = start + entry.bytes.count
        }
    }

    /// A key the header's top-level object holds twice (JSONSerialization keeps the last one
    /// silently; the format forbids duplicates), found by scanning the JSON text.
    private static func duplicateKey(in header: Data) -> String? {
        var keys = Set<String>(), depth = 0, i = header.startIndex
        while i < header.endIndex {
            switch header[i] {
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
            case UInt8(ascii: "\""):
                var j = i + 1
                while j < header.endIndex && header[j] != UInt8(ascii: "\"") {
                    j += header[j] == UInt8(ascii: "\\") ? 2 : 1
                }
                let text = header[(i + 1)..<min(j, header.endIndex)]
                var k = j + 1
                while k < header.endIndex
                    && (header[k] == 0x20 || header[k] == 0x0A || header[k] == 0x0D || header[k] == 0x09)
                { k += 1 }
                if depth == 1 && k < header.endIndex && header[k] == UInt8(ascii: ":") {
                    let key = String(decoding: text, as: UTF8.self)
                    if !keys.insert(key).inserted { return key }
                }
                i = j
            default: break
            }
            i += 1
        }
        return nil
    }

    /// The named tensor as Float32 (F32 as is, the others converted).
    public func tensor(_ name: String) -> Tensor? {
        guard let entry = entries[name] else { return nil }
        let result = Tensor(zeros: entry.shape)
        let out = result.data
        entry.bytes.withUnsafeBytes { raw in
            switch entry.dtype {
            case .f32:
                for i in 0..<result.count {
                    out[i] = Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian)
                }
            case .f64:
                for i in 0..<result.count {
                    out[i] = Float(
                        Double(bitPattern: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self).littleEndian))
                }
            case .f16:
                for i in 0..<result.count {
                    out[i] = Float(
                        Float16(bitPattern: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian))
                }
            case .bf16:
                for i in 0..<result.count {
                    out[i] = Float(
                        bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) << 16
                    )
                }
            case .i64:
                for i in 0..<result.count {
                    out[i] = Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
                }
            case .u8: for i in 0..<result.count { out[i] = Float(raw[i]) }
            }
        }
        return result
    }

    /// The named I64 tensor's values.
    public func int64s(_ name: String) -> [Int64]? {
        guard let entry = entries[name], entry.dtype == .i64 else { return nil }
        return entry.bytes.withUnsafeBytes { raw in
            (0..<(entry.bytes.count / 8)).map {
                Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))
            }
        }
    }

    /// The named U8 tensor's bytes.
    public func uint8s(_ name: String) -> [UInt8]? {
        guard let entry = entries[name], entry.dtype == .u8 else { return nil }
        return Array(entry.bytes)
    }

    // MARK: Building

    public mutating func set(_ name: String, _ tensor: Tensor) {
        var bytes = Data(count: tensor.count * 4)
        bytes.withUnsafeMutableBytes { raw in
            for i in 0..<tensor.count {
                raw.storeBytes(of: tensor.data[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
            }
        }
        entries[name] = Entry(dtype: .f32, shape: tensor.shape, bytes: bytes)
    }

    public mutating func set(_ name: String, int64s values: [Int64], shape: [Int]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
        var bytes = Data(count: values.count * 8)
        bytes.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() {
                raw.storeBytes(of: v.littleEndian, toByteOffset: 8 * i, as: Int64.self)
            }
        }
        entries[name] = Entry(dtype: .i64, shape: shape, bytes: bytes)
    }

    public mutating func set(_ name: String, uint8s bytes: Data, shape: [Int]) {
        precondition(shape.reduce(1, *) == bytes.count, "shape \(shape) does not hold \(bytes.count) bytes")
        entries[name] = Entry(dtype: .u8, shape: shape, bytes: bytes)
    }

    // MARK: Writing

    /// The file's bytes: header, then tensors ordered by dtype size (largest first) then name, so
    /// every tensor starts aligned to its element size.
    public func serialized() -> Data {
        let order = entries.keys.sorted { a, b in
            let (sa, sb) = (entries[a]!.dtype.size, entries[b]!.dtype.size)
            return sa != sb ? sa > sb : a < b
        }
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            fields.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for name in order {
            let entry = entries[name]!
            let shape = entry.shape.map(String.init).joined(separator: ",")
            fields.append(
                "\(jsonString(name)):{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + entry.bytes.count)]}"
            )
            offset += entry.bytes.count
        }
        var header = Data("{\(fields.joined(separator: ","))}".utf8)
        header.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8))
        var file = Data(capacity: 8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(header)
        for name in order { file.append(entries[name]!.bytes) }
        return file
    }

    /// Writes the file atomically: to a temporary file beside `path`, synced, then renamed over it,
    /// so a crash leaves either the old file or the new one, never a torn one.
    public func write(to path: String, what: String = "safetensors file") throws(FileError) {
        try Files.write(serialized(), to: path, what: what)
    }
}

/// A safetensors file whose content is not what it must be. Exit 65.
public struct SafeTensorsError: Error, CustomStringConvertible {
    public let path: String
    public let problem: String
    public init(path: String, problem: String) { (self.path, self.problem) = (path, problem) }
    /// A PyTorch file where a safetensors one is wanted, and what to do about it.
    public init(path: String, pyTorchFormat: String, advice: String) {
        (self.path, self.problem) = (path, "\(pyTorchFormat), not a safetensors file; \(advice)")
    }
    public var description: String { "\(path): \(problem)" }
}

/// A JSON string literal for `s`.
func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
