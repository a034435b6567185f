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
    /// Lines read with a caveat (extra labels on a list line), with the caveat.
    public var warnings: [(source: String, message: String)] = []

    /// "120 videos, 7 classes; 3 missing, 1 malformed line" and the first few problems.
    public var summary: String {
        var problems: [String] = []
        if !missing.isEmpty { problems.append("\(missing.count) missing") }
        if !malformed.isEmpty { problems.append("\(malformed.count) malformed line\(malformed.count == 1 ? "" : "s")") }
        return "\(entries.count) videos, \(classes.count) classes"
            + (problems.isEmpty ? "" : "; " + problems.joined(separator: ", "))
    }

    /// One line per problem, "file:line: what".
    public var problems: [String] {
        missing.map { "\($0.source): no video at \($0.path)" } + malformed.map { "\($0.source): \($0.reason)" }
            + warnings.map { "\($0.source): \($0.message)" }
    }

    /// The first entry whose label the model cannot score, as an error naming its line.
    public func labelProblem(numClasses: Int) -> DataError? {
        guard let entry = entries.first(where: { $0.label >= numClasses }) else { return nil }
        return DataError(
            "\(entry.source): label \(entry.label) (\(classes[entry.label])) is not below the model's \(numClasses) classes (model.num_classes); "
                + "this dataset has \(classes.count)")
    }
}

/// Reads the three annotation formats of `AnnotationFormat`.
public enum Annotations {
    /// Video file extensions tried for Kinetics entries and accepted in class folders (any case):
    /// Kinetics' own first, then the containers the reader is tested on that cameras, broadcast
    /// recordings and older downloads come in.
    public static let videoExtensions = [
        "mp4", "webm", "mkv", "avi", "mov", "m4v", "mpg", "mpeg", "ts", "m2ts", "mts", "flv", "3gp", "wmv",
    ]

    /// The dataset `annotations` lists (for `folders`, the folder of class folders), with paths
    /// relative to `root`; `classes` is a file of class names, one a line, or nil to take the
    /// sorted labels (folder names) of `classesFrom`, normally the training annotations, so that
    /// training and validation agree on the indices.
    public static func load(
        format: AnnotationFormat, annotations: String, root: String, classes: String? = nil,
        classesFrom: String? = nil
    ) throws(DataError) -> Dataset {
        let classNames: [String]?
        if let classes, !classes.isEmpty {
            let lines = try readLines(classes, what: "classes file").map {
                (number: $0.number, name: $0.text.trimmingCharacters(in: .whitespaces))
            }
            var firstLine: [String: Int] = [:]  // a name twice would make two indices of one class
            for (number, name) in lines {
                if let first = firstLine[name] {
                    throw DataError("\(classes):\(number): '\(name)' again (first at line \(first))")
                }
                firstLine[name] = number
            }
            classNames = lines.map(\.name)
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

    /// `path` as the loader reads it: folders' annotation paths are relative to `root`.
    public static func resolve(_ path: String, root: String) -> String {
        path.hasPrefix("/") || root.isEmpty ? path : (root as NSString).appendingPathComponent(path)
    }

    private static func readLines(_ path: String, what: String = "annotation file") throws(DataError) -> [TextFile.Line]
    {
        do { return try TextFile.lines(path, what: what) } catch { throw DataError(error.description) }
    }

    /// The columns of a Kinetics CSV, by the header's names when there is one.
    struct KineticsColumns {
        var label = 0, youtubeID = 1, timeStart = 2, timeEnd = 3, split = 4
        var count: Int { max(label, youtubeID, timeStart, timeEnd, split) + 1 }

        /// The columns a header line names, or nil when the line is not a header. A header
        /// without a label column (Kinetics' test CSVs) is an error.
        init?(header fields: [String], path: String) throws(DataError) {
            let names = fields.map { $0.lowercased() }
            guard names.contains("youtube_id") else { return nil }
            func column(_ name: String) throws(DataError) -> Int {
                guard let i = names.firstIndex(of: name) else {
                    throw DataError(
                        "\(path):1: the header has no \(name) column (label,youtube_id,time_start,time_end,split)"
                            + (name == "label" ? "; an unlabelled test list cannot be trained on or evaluated" : ""))
                }
                return i
            }
            (label, youtubeID, timeStart, timeEnd, split) = (
                try column("label"), try column("youtube_id"), try column("time_start"),
                try column("time_end"), try column("split")
            )
        }

        init() {}
    }

    /// Kinetics CSV: label,youtube_id,time_start,time_end,split (in the header's order, when it
    /// has one; fields may be quoted); videos at ROOT/SPLIT/LABEL/YOUTUBEID_START_END.EXT (times
    /// zero-padded to six digits; EXT any of videoExtensions, in any case; LABEL as written or as
    /// renamed, `folderNames(of:)`), or at ROOT/SPLIT/YOUTUBEID_START_END.EXT, as the
    /// CVDF download (cvdfoundation/kinetics-dataset) unpacks them.
    private static func kinetics(_ path: String, root: String, classes: [String]?) throws(DataError) -> Dataset {
        var rows: [(source: String, label: String, file: String)] = []
        var missing: [(source: String, path: String)] = [], malformed: [(source: String, reason: String)] = []
        var lines = try readLines(path)[...]
        // Each folder listed once, not each name tried with stat: a split holds 240,000 videos.
        // folder -> stem -> file name, the first ending of videoExtensions
        var listings: [String: [Substring: String]] = [:]
        func video(_ stem: String, in folder: String) -> String? {
            if listings[folder] == nil {
                var best: [Substring: (rank: Int, name: String)] = [:]
                for name in videoFiles(in: folder).videos {
                    let dot = name.lastIndex(of: ".")!  // a video file's name has an ending
                    let rank = videoExtensions.firstIndex(of: name[name.index(after: dot)...].lowercased())!
                    if rank < best[name[..<dot]]?.rank ?? .max { best[name[..<dot]] = (rank, name) }
                }
                listings[folder] = best.mapValues(\.name)
            }
            return listings[folder]![stem[...]].map { "\(folder)/\($0)" }
        }
        var columns = KineticsColumns()
        if let first = lines.first, let header = try KineticsColumns(header: csvFields(first.text), path: path) {
            columns = header
            lines = lines.dropFirst()
        }
        for (number, line) in lines {
            let source = "\(path):\(number)"
            let fields = csvFields(line)
            guard fields.count >= columns.count else {
                malformed.append(
                    (
                        source,
                        "expected \(columns.count) fields (label,youtube_id,time_start,time_end,split), got \(fields.count): '\(line)'"
                    ))
                continue
            }
            let (label, id, split) = (fields[columns.label], fields[columns.youtubeID], fields[columns.split])
            guard let start = kineticsTime(fields[columns.timeStart]), let end = kineticsTime(fields[columns.timeEnd])
            else {
                malformed.append(
                    (
                        source,
                        "time_start and time_end must be whole seconds, got '\(fields[columns.timeStart])' and '\(fields[columns.timeEnd])'"
                    ))
                continue
            }
            guard !label.isEmpty, !id.isEmpty, !split.isEmpty else {
                malformed.append((source, "empty label, youtube_id or split in '\(line)'"))
                continue
            }
            let name = "\(id)_\(start)_\(end)"
            if let found = folderNames(of: label).lazy.compactMap({ video(name, in: "\(root)/\(split)/\($0)") }).first
                ?? video(name, in: "\(root)/\(split)")
            {
                rows.append((source, label, found))
            } else {
                let endings = "{\(videoExtensions.joined(separator: ","))}"
                missing.append(
                    (source, "\(root)/\(split)/\(label)/\(name).\(endings) or \(root)/\(split)/\(name).\(endings)"))
            }
        }
        return try labelled(rows, classes: classes, missing: missing, malformed: malformed, path: path)
    }

    /// The folder names a Kinetics label is found under: as written, then as downloaders and
    /// mmaction2's rename_classnames.sh rename it (spaces to _; its older form also turned
    /// parentheses to -: "skiing_-not_slalom_or_crosscountry-").
    static func folderNames(of label: String) -> [String] {
        let underscored = String(label.map { $0 == " " ? "_" : $0 })
        let hyphened = String(underscored.map { $0 == "(" || $0 == ")" ? "-" : $0 })
        return [label, underscored, hyphened].reduce(into: []) { names, name in
            if !names.contains(name) { names.append(name) }
        }
    }

    /// A Kinetics time as its file names write it: whole seconds, zero-padded to six digits and
    /// never cut ("4" -> "000004", "10.0" -> "000010", "4294967296" kept whole); nil for an
    /// empty, fractional or non-numeric field.
    public static func kineticsTime(_ field: String) -> String? {
        let parts = field.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.allSatisfy({ $0.isASCII && $0.isNumber }),
            parts.count == 1 || parts[1].allSatisfy({ $0 == "0" })
        else { return nil }
        let digits = String(whole.drop { $0 == "0" })
        return String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    /// mmaction2 list files: "relative/path label_index" a line, paths relative to the root. The
    /// label is the last field and the path everything before it (Kinetics' folder names hold
    /// spaces). A line with more labels (a multi-label list, "path 3 17") is read with its first
    /// one, with a warning.
    private static func list(_ path: String, root: String, classes: [String]?) throws(DataError) -> Dataset {
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
    private static func folders(_ folder: String, classes: [String]?) throws(DataError) -> Dataset {
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
    private static func videoFiles(in folder: String) -> (videos: [String], notUTF8: [String]) {
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

    /// Entries from (source, label name, file) rows: label indices in `classes` or, without
    /// them, in the sorted label names.
    private static func labelled(
        _ rows: [(source: String, label: String, file: String)], classes: [String]?,
        missing: [(source: String, path: String)], malformed: [(source: String, reason: String)],
        warnings: [(source: String, message: String)] = [], path: String
    ) throws(DataError) -> Dataset {
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
        var dataset = Dataset(entries: entries, classes: names, missing: missing, malformed: malformed)
        dataset.warnings = warnings
        return try finished(dataset, path: path)
    }

    /// The dataset, unless it has no usable video: then an error that says why, with the first
    /// few malformed lines and missing videos. A video listed again with another label is a
    /// malformed line (which label is meant?); listed again with the same one, it stays (each is
    /// trained on, as mmaction2 does), with a warning that says how often.
    private static func finished(_ listed: Dataset, path: String) throws(DataError) -> Dataset {
        var kept: [VideoEntry] = [], first: [String: Int] = [:], repeats: [String: Int] = [:]
        var malformed = listed.malformed, warnings = listed.warnings
        for entry in listed.entries {
            guard let i = first[entry.path] else {
                first[entry.path] = kept.count
                kept.append(entry)
                continue
            }
            if kept[i].label != entry.label {
                malformed.append(
                    (
                        entry.source,
                        "the video of \(kept[i].source) again, with another label (\(listed.classes[entry.label]), "
                            + "not \(listed.classes[kept[i].label])); left out"
                    ))
                continue
            }
            repeats[entry.path, default: 1] += 1
            kept.append(entry)
        }
        for (path, count) in repeats.sorted(by: { first[$0.key]! < first[$1.key]! }) {
            warnings.append((kept[first[path]!].source, "\(path) is listed \(count) times; each is trained on"))
        }
        var dataset = Dataset(entries: kept, classes: listed.classes, missing: listed.missing, malformed: malformed)
        dataset.warnings = warnings
        guard dataset.entries.isEmpty else { return dataset }
        var reason = "\(path): no usable video (\(dataset.summary))"
        if dataset.missing.isEmpty && dataset.malformed.isEmpty { reason += ": the file lists no videos" }
        let shown = 5
        for (kind, lines) in [
            ("malformed", dataset.malformed.map { "\($0.source): \($0.reason)" }),
            ("missing", dataset.missing.map { "\($0.source): no video at \($0.path)" }),
        ] where !lines.isEmpty {
            reason += "\n  \(lines.count) \(kind)" + (lines.count > shown ? ", the first \(shown)" : "") + ":"
            reason += lines.prefix(shown).map { "\n    \($0)" }.joined()
        }
        throw DataError(reason)
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
        // Foundation's trimming is slow, and most fields have nothing to trim.
        return fields.map {
            $0.first?.isWhitespace == true || $0.last?.isWhitespace == true
                ? $0.trimmingCharacters(in: .whitespaces) : $0
        }
    }
}
