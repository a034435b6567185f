import Foundation
import NLTensor
import NLVideo

/// The official Kinetics CSVs (kinetics_csv).
extension Annotations {
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
    static func kinetics(_ path: String, root: String, classes: [String]?) throws(DataError) -> Dataset {
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
