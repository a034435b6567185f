import Foundation
import NLTensor
import NLVideo

/// One video of a dataset.
public struct VideoEntry: Sendable, Equatable {
    public let path: String
    public let label: Int
    /// The annotation file and line it came from ("train.csv:12"), or the folder.
    public let source: String
    /// The frames the entry is, when it is a window of the video (nlpredict --window); nil: all.
    public var frames: Range<Int>?

    public init(path: String, label: Int, source: String, frames: Range<Int>? = nil) {
        (self.path, self.label, self.source, self.frames) = (path, label, source, frames)
    }
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

    public init(
        entries: [VideoEntry], classes: [String], missing: [(source: String, path: String)] = [],
        malformed: [(source: String, reason: String)] = []
    ) {
        (self.entries, self.classes, self.missing, self.malformed) = (entries, classes, missing, malformed)
    }

    /// How many videos each class has, in class order.
    public var classCounts: [Int] {
        entries.reduce(into: [Int](repeating: 0, count: classes.count)) { counts, entry in
            if counts.indices.contains(entry.label) { counts[entry.label] += 1 }
        }
    }

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

    static func readLines(_ path: String, what: String = "annotation file") throws(DataError) -> [TextFile.Line] {
        do { return try TextFile.lines(path, what: what) } catch { throw DataError(error.description) }
    }

    /// Entries from (source, label name, file) rows: label indices in `classes` or, without
    /// them, in the sorted label names.
    static func labelled(
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
    static func finished(_ listed: Dataset, path: String) throws(DataError) -> Dataset {
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

}
