import Foundation
import NLTensor
import NLVideo

/// mmaction2's list files (list) and a folder per class (folders).
extension Annotations {
    /// mmaction2 list files: "relative/path label_index" a line, paths relative to the root. The
    /// label is the last field and the path everything before it (Kinetics' folder names hold
    /// spaces). A line with more labels (a multi-label list, "path 3 17") is read with its first
    /// one, with a warning.
    static func list(_ path: String, root: String, classes: [String]?) throws(DataError) -> Dataset {
        var entries: [VideoEntry] = []
        var missing: [(source: String, path: String)] = [], malformed: [(source: String, reason: String)] = []
        var warnings: [(source: String, message: String)] = []
        for (number, line) in try readLines(path) {
            let source = "\(path):\(number)"
            let numbers = trailingNumbers(line)
            guard let last = numbers.last, !line[..<last.start].trimmingCharacters(in: .whitespaces).isEmpty else {
                malformed.append((source, "expected 'relative/path label_index', got '\(line)'"))
                continue
            }
            var (name, label) = (line[..<last.start].trimmingCharacters(in: .whitespaces), last.value)
            // "clip.mp4 3 17" is two labels, unless a file "clip.mp4 3" is there.
            if let first = numbers.first, numbers.count > 1,
                !FileManager.default.fileExists(atPath: resolve(name, root: root)),
                !line[..<first.start].trimmingCharacters(in: .whitespaces).isEmpty
            {
                (name, label) = (line[..<first.start].trimmingCharacters(in: .whitespaces), first.value)
                warnings.append(
                    (source, "\(numbers.count) labels on one line (a multi-label list?); using the first, \(label)"))
            }
            if let classes, label >= classes.count {
                malformed.append((source, "label \(label) is not one of the \(classes.count) classes"))
                continue
            }
            var file = resolve(String(name), root: root)
            // A list written on Windows: abseiling\x.mp4.
            if name.contains("\\"), !FileManager.default.fileExists(atPath: file) {
                file = resolve(String(name.map { $0 == "\\" ? "/" : $0 }), root: root)
            }
            if FileManager.default.fileExists(atPath: file) {
                entries.append(VideoEntry(path: file, label: label, source: source))
            } else {
                missing.append((source, file))
            }
        }
        let names = classes ?? (0..<((entries.map(\.label).max() ?? -1) + 1)).map(String.init)
        var dataset = Dataset(entries: entries, classes: names, missing: missing, malformed: malformed)
        dataset.warnings = warnings
        return try finished(dataset, path: path)
    }

    /// The whole non-negative numbers at the end of a list line, each with where it starts.
    static func trailingNumbers(_ line: String) -> [(value: Int, start: String.Index)] {
        var numbers: [(value: Int, start: String.Index)] = []
        for word in line.split(whereSeparator: { $0 == " " || $0 == "\t" }).reversed() {
            guard word.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(word) else { break }
            numbers.insert((value, word.startIndex), at: 0)
        }
        return numbers
    }

    /// A folder per class: FOLDER/CLASS/VIDEO.EXT; classes are the sorted folder names.
    static func folders(_ folder: String, classes: [String]?) throws(DataError) -> Dataset {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else {
            throw DataError("\(folder): no such folder of class folders")
        }
        var rows: [(source: String, label: String, file: String)] = []
        var warnings: [(source: String, message: String)] = []
        var byName: [String: String] = [:]  // Swift compares names canonically: café in NFC and in NFD are one
        for name in names.sorted() where !name.hasPrefix(".") {  // hidden: .DS_Store, ._clip.mp4 (macOS), .git
            let classFolder = "\(folder)/\(name)"
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: classFolder, isDirectory: &isFolder), isFolder.boolValue else {
                continue
            }
            if let other = byName[name], Array(other.utf8) != Array(name.utf8) {
                warnings.append(
                    (
                        classFolder,
                        "the same name as \(folder)/\(other) in another Unicode form (NFC and NFD, as macOS and Linux "
                            + "write accents): one class, \(name), of both folders' videos; rename one if they are two"
                    ))
            }
            byName[name] = byName[name] ?? name
            let (videos, unreadable) = videoFiles(in: classFolder)
            for bytes in unreadable {
                warnings.append((classFolder, "a file whose name is not UTF-8 (\(bytes)) is left out: rename it"))
            }
            if videos.isEmpty { warnings.append((classFolder, "holds no videos: no class \(name)")) }
            for video in videos.sorted() {
                rows.append((classFolder, name, "\(classFolder)/\(video)"))
            }
        }
        return try labelled(rows, classes: classes, missing: [], malformed: [], warnings: warnings, path: folder)
    }

    /// The names of `folder`'s videos: files ending in one of videoExtensions, in any case, less
    /// hidden ones (.DS_Store, macOS's ._clip.mp4); none if it is not a folder. Names that are
    /// not UTF-8 (a Latin-1 archive unpacked on Linux) cannot be a path here: they come back
    /// apart, their bytes escaped, to be named.
    static func videoFiles(in folder: String) -> (videos: [String], notUTF8: [String]) {
        guard let directory = opendir(folder) else { return ([], []) }
        defer { closedir(directory) }
        var videos: [String] = [], notUTF8: [String] = []
        while let entry = readdir(directory) {
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            guard let name = String(validating: bytes, as: UTF8.self) else {
                notUTF8.append(
                    bytes.map { (32..<127).contains($0) ? String(UnicodeScalar($0)) : String(format: "\\x%02X", $0) }
                        .joined())
                continue
            }
            guard !name.hasPrefix("."), let dot = name.lastIndex(of: ".") else { continue }
            if videoExtensions.contains(name[name.index(after: dot)...].lowercased()) { videos.append(name) }
        }
        return (videos, notUTF8)
    }
}
