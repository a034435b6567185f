import Foundation

/// One video of a dataset.
public struct VideoEntry: Sendable, Equatable {
    public let path: String
    public let label: Int
    /// The annotation file and line it came from ("train.csv:12"), or the folder.
    public let source: String
}

/// The videos of one split, their classes, and what the listing skipped.
public struct Dataset: Sendable {
    public let entries: [VideoEntry]
    public let classes: [String]
    /// Entries whose video file is not there, with their annotation line.
    public let missing: [(source: String, path: String)]
    /// Lines that could not be read, with the reason.
    public let malformed: [(source: String, reason: String)]

    /// "120 videos, 7 classes; 3 missing, 1 malformed line" and the first few problems.
    public var summary: String {
        var problems: [String] = []
        if !missing.isEmpty { problems.append("\(missing.count) missing") }
        if !malformed.isEmpty { problems.append("\(malformed.count) malformed line\(malformed.count == 1 ? "" : "s")") }
        return "\(entries.count) videos, \(classes.count) classes" + (problems.isEmpty ? "" : "; " + problems.joined(separator: ", "))
    }

    /// One line per problem, "file:line: what".
    public var problems: [String] {
        missing.map { "\($0.source): no video at \($0.path)" } + malformed.map { "\($0.source): \($0.reason)" }
    }
}

/// Reads the three annotation formats of `AnnotationFormat`.
public enum Annotations {
    /// Video file extensions tried for Kinetics entries and accepted in class folders.
    public static let videoExtensions = ["mp4", "webm", "mkv", "avi", "mov"]

    /// The dataset `annotations` lists (for `folders`, the folder of class folders), with paths
    /// relative to `root`; `classes` is a file of class names, one a line, or nil to take the
    /// sorted labels (folder names) of `classesFrom`, normally the training annotations, so that
    /// training and validation agree on the indices.
    public static func load(format: AnnotationFormat, annotations: String, root: String, classes: String? = nil,
                            classesFrom: String? = nil) throws(DataError) -> Dataset {
        let classNames: [String]?
        if let classes, !classes.isEmpty {
            classNames = try readLines(classes).map { $0.text.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        } else if let classesFrom, classesFrom != annotations {
            classNames = try load(format: format, annotations: classesFrom, root: root).classes
        } else {
            classNames = nil
        }
        switch format {
        case .kineticsCSV: return try kinetics(annotations, root: root, classes: classNames)
        case .list: return try list(annotations, root: root, classes: classNames)
        case .folders: return try folders(resolve(annotations, root: root), classes: classNames)
        }
    }

    static func resolve(_ path: String, root: String) -> String {
        path.hasPrefix("/") || root.isEmpty ? path : (root as NSString).appendingPathComponent(path)
    }

    private static func readLines(_ path: String) throws(DataError) -> [(number: Int, text: String)] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DataError(FileManager.default.fileExists(atPath: path)
                            ? "\(path): cannot read the annotation file (not UTF-8 text?)" : "\(path): no such annotation file")
        }
        return text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap { i, line in
            let trimmed = line.trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
            return trimmed.trimmingCharacters(in: .whitespaces).isEmpty ? nil : (i + 1, trimmed)
        }
    }

    /// Kinetics CSV: label,youtube_id,time_start,time_end,split[,...], a header line; videos at
    /// ROOT/SPLIT/LABEL/YOUTUBEID_START_END.EXT (times zero-padded to six digits; EXT any of
    /// mp4, webm, mkv, ...; the label folder as written or with spaces as underscores).
    private static func kinetics(_ path: String, root: String, classes: [String]?) throws(DataError) -> Dataset {
        var rows: [(source: String, label: String, file: String)] = []
        var missing: [(source: String, path: String)] = [], malformed: [(source: String, reason: String)] = []
        for (number, line) in try readLines(path) {
            let source = "\(path):\(number)"
            let fields = csvFields(line)
            if number == 1 && fields.first?.lowercased() == "label" { continue }  // the header
            guard fields.count >= 5, let start = Int(fields[2].split(separator: ".")[0]), let end = Int(fields[3].split(separator: ".")[0]),
                  !fields[0].isEmpty, !fields[1].isEmpty, !fields[4].isEmpty else {
                malformed.append((source, "expected label,youtube_id,time_start,time_end,split, got '\(line)'"))
                continue
            }
            let (label, id, split) = (fields[0], fields[1], fields[4])
            let name = String(format: "%@_%06d_%06d", id, start, end)
            let folders = [label, label.replacingOccurrences(of: " ", with: "_")]
            let candidates = folders.flatMap { folder in videoExtensions.map { "\(root)/\(split)/\(folder)/\(name).\($0)" } }
            if let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) {
                rows.append((source, label, found))
            } else {
                missing.append((source, "\(root)/\(split)/\(label)/\(name).{\(videoExtensions.joined(separator: ","))}"))
            }
        }
        return try labelled(rows, classes: classes, missing: missing, malformed: malformed, path: path)
    }

    /// mmaction2 list files: "relative/path label_index" a line, paths relative to the root.
    private static func list(_ path: String, root: String, classes: [String]?) throws(DataError) -> Dataset {
        var entries: [VideoEntry] = []
        var missing: [(source: String, path: String)] = [], malformed: [(source: String, reason: String)] = []
        for (number, line) in try readLines(path) {
            let source = "\(path):\(number)"
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, let label = Int(fields[1]), label >= 0 else {
                malformed.append((source, "expected 'relative/path label_index', got '\(line)'"))
                continue
            }
            if let classes, label >= classes.count {
                malformed.append((source, "label \(label) is not one of the \(classes.count) classes"))
                continue
            }
            let file = resolve(String(fields[0]), root: root)
            if FileManager.default.fileExists(atPath: file) {
                entries.append(VideoEntry(path: file, label: label, source: source))
            } else {
                missing.append((source, file))
            }
        }
        let names = classes ?? (0..<((entries.map(\.label).max() ?? -1) + 1)).map(String.init)
        return try finished(Dataset(entries: entries, classes: names, missing: missing, malformed: malformed), path: path)
    }

    /// A folder per class: FOLDER/CLASS/VIDEO.EXT; classes are the sorted folder names.
    private static func folders(_ folder: String, classes: [String]?) throws(DataError) -> Dataset {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else {
            throw DataError("\(folder): no such folder of class folders")
        }
        var rows: [(source: String, label: String, file: String)] = []
        for name in names.sorted() {
            let classFolder = "\(folder)/\(name)"
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: classFolder, isDirectory: &isFolder), isFolder.boolValue else { continue }
            let videos = (try? FileManager.default.contentsOfDirectory(atPath: classFolder)) ?? []
            for video in videos.sorted() where videoExtensions.contains((video as NSString).pathExtension.lowercased()) {
                rows.append((classFolder, name, "\(classFolder)/\(video)"))
            }
        }
        return try labelled(rows, classes: classes, missing: [], malformed: [], path: folder)
    }

    /// Entries from (source, label name, file) rows: label indices in `classes` or, without
    /// them, in the sorted label names.
    private static func labelled(_ rows: [(source: String, label: String, file: String)], classes: [String]?,
                                 missing: [(source: String, path: String)], malformed: [(source: String, reason: String)],
                                 path: String) throws(DataError) -> Dataset {
        let names = classes ?? Array(Set(rows.map(\.label))).sorted()
        let index = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        var malformed = malformed, entries: [VideoEntry] = []
        for row in rows {
            guard let label = index[row.label] else {
                malformed.append((row.source, "label '\(row.label)' is not one of the \(names.count) classes"))
                continue
            }
            entries.append(VideoEntry(path: row.file, label: label, source: row.source))
        }
        return try finished(Dataset(entries: entries, classes: names, missing: missing, malformed: malformed), path: path)
    }

    private static func finished(_ dataset: Dataset, path: String) throws(DataError) -> Dataset {
        guard !dataset.entries.isEmpty else {
            let first = dataset.problems.first.map { "; first problem: \($0)" } ?? ""
            throw DataError("\(path): no usable video (\(dataset.summary))\(first)")
        }
        return dataset
    }

    /// The fields of one CSV line: commas separate, double quotes enclose fields that hold
    /// commas, and "" inside quotes is a quote.
    static func csvFields(_ line: String) -> [String] {
        var fields: [String] = [], field = "", quoted = false
        var characters = Array(line)[...]
        while let c = characters.popFirst() {
            switch c {
            case "\"" where quoted && characters.first == "\"": field.append("\""); characters.removeFirst()
            case "\"": quoted.toggle()
            case "," where !quoted: fields.append(field); field = ""
            default: field.append(c)
            }
        }
        fields.append(field)
        return fields.map { $0.trimmingCharacters(in: .whitespaces) }
    }
}
