import Foundation

/// Whole files read and written with errors a person can act on: the path and "no such file",
/// "is a directory", "permission denied", never Foundation's NSCocoaErrorDomain texts. `what`
/// names the file's role in them ("config file", "checkpoint").
public enum Files {
    /// The bytes of the file at `path`.
    public static func read(_ path: String, what: String) throws(FileError) -> Data {
        try checkReadable(path, what: what)
        guard let handle = FileHandle(forReadingAtPath: path) else { throw FileError(path, "cannot read the \(what) (\(lastError))") }
        defer { try? handle.close() }
        do { return try handle.readToEnd() ?? Data() } catch {
            throw FileError(path, "cannot read the \(what) (\(lastError))")
        }
    }

    /// Fails unless `path` is a file that can be opened for reading.
    public static func checkReadable(_ path: String, what: String) throws(FileError) {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw FileError(path, errno == ENOENT ? "no such \(what)" : "cannot read the \(what) (\(lastError))")
        }
        if status.st_mode & S_IFMT == S_IFDIR { throw FileError(path, "is a directory, not the \(what)") }
        guard access(path, R_OK) == 0 else { throw FileError(path, "cannot read the \(what) (\(lastError))") }
    }

    /// Fails unless a file can be written at `path`: its folder exists and is writable, and the
    /// path is not a folder. For output paths checked before long work.
    public static func checkWritable(_ path: String, what: String) throws(FileError) {
        var status = stat()
        if stat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFDIR {
            throw FileError(path, "is a directory; give a file name for the \(what)")
        }
        let folder = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        guard stat(folder, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
            throw FileError(path, "cannot write the \(what): no such directory \(folder)")
        }
        guard access(folder, W_OK) == 0 else { throw FileError(path, "cannot write the \(what) into \(folder) (\(lastError))") }
    }

    /// Makes the folder `path` (and its parents) unless it is there.
    public static func makeDirectory(_ path: String, what: String) throws(FileError) {
        var status = stat()
        if stat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFDIR else { throw FileError(path, "is a file; give a folder for the \(what)") }
            return
        }
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw FileError(path, "cannot make the \(what) (\(lastError))")
        }
    }

    /// Writes `data` to a temporary file in `path`'s folder, syncs it and renames it to `path`, so
    /// that a crash leaves either the old file or the new one, never a torn one.
    public static func write(_ data: Data, to path: String, what: String) throws(FileError) {
        try checkWritable(path, what: what)
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw FileError(path, "cannot write the \(what) (\(lastError))") }
        var failure = writeWhole(data, to: fd)
        if failure == nil && fsync(fd) != 0 { failure = lastError }
        close(fd)
        if failure == nil && rename(temporary, path) != 0 { failure = lastError }
        if let failure {
            unlink(temporary)
            throw FileError(path, "cannot write the \(what) (\(failure))")
        }
        // Make the rename itself durable.
        let folder = open((path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent, O_RDONLY)
        if folder >= 0 { fsync(folder); close(folder) }
    }

    /// Writes text, as `write(_:to:what:)` does.
    public static func write(_ text: String, to path: String, what: String) throws(FileError) {
        try write(Data(text.utf8), to: path, what: what)
    }

    /// Appends `text` to the file at `path`, made if missing: nil, or why it could not (a full
    /// disk). For logs, which must not end a run where FileHandle.write would crash it.
    @discardableResult
    public static func append(_ text: String, to path: String) -> String? {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else { return lastError }
        defer { close(fd) }
        return writeWhole(Data(text.utf8), to: fd)
    }

    /// Writes `text` to an open descriptor (standard output or error): nil, or why it could not
    /// (a closed pipe, a full disk, a terminal gone), where FileHandle.write would crash.
    @discardableResult
    public static func emit(_ text: String, to handle: FileHandle) -> String? {
        writeWhole(Data(text.utf8), to: handle.fileDescriptor)
    }

    /// All of `data` to `fd`, through short and interrupted writes: nil, or the error's text.
    private static func writeWhole(_ data: Data, to fd: Int32) -> String? {
        data.withUnsafeBytes { raw in
            var written = 0
            while written < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 { if errno == EINTR { continue }; return lastError }
                written += n
            }
            return nil
        }
    }

    private static var lastError: String { String(cString: strerror(errno)).lowercased() }
}

/// A file that cannot be read or written, or whose text is wrong at a line: the path (and the
/// line) and what is wrong.
public struct FileError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let line: Int?
    public let problem: String

    public init(_ path: String, line: Int? = nil, _ problem: String) {
        (self.path, self.line, self.problem) = (path, line, problem)
    }

    public var description: String { "\(path)\(line.map { ":\($0)" } ?? ""): \(problem)" }
}
