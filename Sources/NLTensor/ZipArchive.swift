import Foundation

/// The entries of a zip archive whose files are stored uncompressed, as torch.save writes them
/// (since PyTorch 1.6): read from the central directory, zip64 included. Written here because no
/// library among the project's dependencies reads zip, and stored entries are all it takes.
struct ZipArchive {
    let data: Data
    let path: String
    /// Each entry's name and the range of its bytes in `data`.
    private(set) var entries: [String: Range<Int>] = [:]
    /// The entry names in archive order.
    private(set) var names: [String] = []

    init(data: Data, path: String) throws {
        (self.data, self.path) = (data, path)
        let d = data.startIndex
        func fail(_ problem: String) -> SafeTensorsError {
            SafeTensorsError(path: path, problem: "a damaged zip archive: \(problem)")
        }
        func integer(_ at: Int, _ size: Int) throws -> Int {
            guard at >= 0, at + size <= data.count else {
                throw fail("a record runs past the end of the file (truncated?)")
            }
            return (0..<size).reversed().reduce(0) { $0 << 8 | Int(data[d + at + $1]) }
        }
        // The end-of-central-directory record: in the last 64 KiB + 22 bytes (it may have a comment).
        let signature: [UInt8] = [0x50, 0x4B, 0x05, 0x06]
        let searchStart = max(0, data.count - 22 - 65_535)
        guard
            let end = stride(from: data.count - 22, through: searchStart, by: -1).first(where: { i in
                (0..<4).allSatisfy { data[d + i + $0] == signature[$0] }
            })
        else { throw fail("no end-of-central-directory record (truncated?)") }
        var count = try integer(end + 10, 2), directory = try integer(end + 16, 4)
        if count == 0xFFFF || directory == 0xFFFF_FFFF {  // zip64: the locator just before points at the real record
            guard try integer(end - 20, 4) == 0x0706_4B50 else { throw fail("zip64 fields without a zip64 locator") }
            let record = try integer(end - 12, 8)
            guard try integer(record, 4) == 0x0606_4B50 else { throw fail("the zip64 locator points at no record") }
            (count, directory) = (try integer(record + 32, 8), try integer(record + 48, 8))
        }
        var at = directory
        for _ in 0..<count {
            guard try integer(at, 4) == 0x0201_4B50 else { throw fail("a central directory entry is missing") }
            let method = try integer(at + 10, 2)
            var size = try integer(at + 20, 4), local = try integer(at + 42, 4)
            let nameLength = try integer(at + 28, 2), extraLength = try integer(at + 30, 2)
            let commentLength = try integer(at + 32, 2)
            guard at + 46 + nameLength <= data.count else { throw fail("an entry name runs past the end of the file") }
            let name = String(decoding: data[(d + at + 46)..<(d + at + 46 + nameLength)], as: UTF8.self)
            // zip64 sizes and offsets, in the order of the fields that are 0xFFFFFFFF
            var extra = at + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = try integer(extra, 2), length = try integer(extra + 2, 2)
                if id == 1 {
                    var field = extra + 4
                    let compressed = try integer(at + 20, 4)
                    if try integer(at + 24, 4) == 0xFFFF_FFFF { size = try integer(field, 8); field += 8 }
                    if compressed == 0xFFFF_FFFF { size = try integer(field, 8); field += 8 }
                    if local == 0xFFFF_FFFF { local = try integer(field, 8) }
                }
                extra += 4 + length
            }
            guard method == 0 else {
                throw fail("entry \(name) is compressed (method \(method)); torch.save stores entries uncompressed")
            }
            guard try integer(local, 4) == 0x0403_4B50 else { throw fail("entry \(name) has no local header") }
            let start = local + 30 + (try integer(local + 26, 2)) + (try integer(local + 28, 2))
            guard start <= data.count, size <= data.count - start else {
                throw fail("entry \(name) runs past the end of the file (truncated?)")
            }
            entries[name] = start..<(start + size)
            names.append(name)
            at += 46 + nameLength + extraLength + commentLength
        }
    }

    /// The bytes of entry `name`, nil when there is none.
    func contents(_ name: String) -> Data? {
        entries[name].map { data[(data.startIndex + $0.lowerBound)..<(data.startIndex + $0.upperBound)] }
    }
}
