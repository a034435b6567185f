import Foundation

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
    public static func lines(_ path: String, what: String) throws(TextFileError) -> [Line] {
        try lines(of: read(path, what: what), path: path)
    }

    /// The file's bytes, or an error that says why they cannot be read.
    public static func read(_ path: String, what: String) throws(TextFileError) -> Data {
        func fail(_ problem: String) -> TextFileError { TextFileError(path: path, line: nil, problem: problem) }
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw fail(errno == ENOENT ? "no such \(what)" : "cannot read the \(what) (\(String(cString: strerror(errno))))")
        }
        if status.st_mode & S_IFMT == S_IFDIR { throw fail("is a directory, not the \(what)") }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw fail("cannot read the \(what) (\(String(cString: strerror(errno))))")
        }
        defer { try? handle.close() }
        do { return try handle.readToEnd() ?? Data() } catch {
            throw fail("cannot read the \(what) (\(error.localizedDescription))")
        }
    }

    /// The non-blank lines of `data`; `path` names it in errors (a line that is not UTF-8, a
    /// UTF-16 file as Windows' Notepad saves "Unicode").
    public static func lines(of data: Data, path: String) throws(TextFileError) -> [Line] {
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xFF, 0xFE]) || bytes.starts(with: [0xFE, 0xFF]) {
            throw TextFileError(path: path, line: nil, problem: "UTF-16 text; save it as UTF-8")
        }
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        var lines: [Line] = []
        var start = 0, number = 1, i = 0
        func take(_ end: Int) throws(TextFileError) {
            guard let text = String(validating: bytes[start..<end], as: UTF8.self) else {
                throw TextFileError(path: path, line: number, problem: "not UTF-8 text; save the file as UTF-8")
            }
            let trimmed = text.trimmingTrailingBlanks
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

/// A text input that cannot be read: the message names the file (and the line) and the problem.
public struct TextFileError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let line: Int?
    public let problem: String
    public var description: String { "\(path)\(line.map { ":\($0)" } ?? ""): \(problem)" }
}

extension String {
    /// Without the spaces and tabs at its end.
    var trimmingTrailingBlanks: String {
        var s = Substring(self)
        while let last = s.last, last == " " || last == "\t" { s.removeLast() }
        return String(s)
    }
}
