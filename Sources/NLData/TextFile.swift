import Foundation
import NLTensor
import NLVideo

/// The one way text inputs are read line by line: configs and their includes, annotation CSVs and
/// lists, classes files, bad_videos.txt. Lines end in LF, CRLF or a lone CR (old Mac), a UTF-8
/// byte-order mark is dropped, trailing blanks are trimmed, and blank lines are skipped but
/// counted, so line numbers are the ones an editor shows. (Swift's String treats "\r\n" as one
/// Character, so splitting a String on "\n" never splits CRLF text: this splits the bytes.)
public enum TextFile {
    /// A line's number (1-based) and its text.
    public typealias Line = (number: Int, text: String)

    /// The non-blank lines of the file at `path`; `what` names the file's role in errors ("the
    /// annotation file"), which say what is wrong: missing, a directory, unreadable, not UTF-8.
    public static func lines(_ path: String, what: String) throws(FileError) -> [Line] {
        try lines(of: Files.read(path, what: what), path: path)
    }

    /// The non-blank lines of `data`; `path` names it in errors (a line that is not UTF-8, a
    /// UTF-16 file as Windows' Notepad saves "Unicode").
    public static func lines(of data: Data, path: String) throws(FileError) -> [Line] {
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xFF, 0xFE]) || bytes.starts(with: [0xFE, 0xFF]) {
            throw FileError(path, "UTF-16 text; save it as UTF-8")
        }
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        var lines: [Line] = []
        var start = 0, number = 1, i = 0
        func take(_ end: Int) throws(FileError) {
            guard let text = String(validating: bytes[start..<end], as: UTF8.self) else {
                throw FileError(path, line: number, "not UTF-8 text; save the file as UTF-8")
            }
            // A byte-order mark mid-file starts a file concatenated to another (cat a.txt b.txt).
            let trimmed = (text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text).trimmingTrailingBlanks
            if !trimmed.isEmpty { lines.append((number, trimmed)) }
        }
        while i < bytes.count {
            let byte = bytes[i]
            guard byte == 0x0A || byte == 0x0D else { i += 1; continue }
            try take(i)
            i += byte == 0x0D && i + 1 < bytes.count && bytes[i + 1] == 0x0A ? 2 : 1
            (start, number) = (i, number + 1)
        }
        if start < bytes.count { try take(bytes.count) }
        return lines
    }

    /// The non-blank lines of text held in memory (a checkpoint's config).
    public static func lines(of text: String) -> [Line] {
        (try? lines(of: Data(text.utf8), path: "text")) ?? []
    }
}

extension String {
    /// Without the spaces and tabs at its end.
    var trimmingTrailingBlanks: String {
        var s = Substring(self)
        while let last = s.last, last == " " || last == "\t" { s.removeLast() }
        return String(s)
    }
}
