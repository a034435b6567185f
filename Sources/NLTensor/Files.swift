import Foundation

/// Whole files read and written with errors a person can act on: the path and "no such file",
/// "is a directory", "permission denied", never Foundation's NSCocoaErrorDomain texts. `what`
/// names the file's role in them ("config file", "checkpoint").
public enum Files {
    /// The bytes of the file at `path`.
    public static func read(_ path: String, what: String) throws(FileError) -> Data {
        try checkReadable(path, what: what)
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw FileError(path, "cannot read the \(what) (\(lastError))")
        }
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
        // /dev/zero or /dev/urandom would be read until memory runs out.
        if [S_IFCHR, S_IFBLK].contains(status.st_mode & S_IFMT) {
            throw FileError(path, "is a device, not the \(what)")
        }
        guard access(path, R_OK) == 0 else { throw FileError(path, "cannot read the \(what) (\(lastError))") }
    }

    /// Fails unless a file can be written at `path`: its folder exists and is writable, and the
    /// path is not a folder; or it is a device, a FIFO or /dev/std* that can be written through.
    /// For output paths checked before long work.
    public static func checkWritable(_ path: String, what: String) throws(FileError) {
        var status = stat()
        if stat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFDIR {
            throw FileError(path, "is a directory; give a file name for the \(what)")
        }
        if writesThrough(path) {
            guard access(path, W_OK) == 0 else { throw FileError(path, "cannot write the \(what) (\(lastError))") }
            return
        }
        let path = symlinkTarget(path) ?? path
        let folder =
            (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        guard stat(folder, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
            throw FileError(path, "cannot write the \(what): no such directory \(folder)")
        }
        guard access(folder, W_OK) == 0 else {
            throw FileError(path, "cannot write the \(what) into \(folder) (\(lastError))")
        }
    }

    /// Makes the folder `path` (and its parents) unless it is there.
    public static func makeDirectory(_ path: String, what: String) throws(FileError) {
        var status = stat()
        if stat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFDIR else {
                throw FileError(path, "is a file; give a folder for the \(what)")
            }
            return
        }
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw FileError(path, "cannot make the \(what) (\(lastError))")
        }
    }

    /// Writes `data` to a temporary file in `path`'s folder, syncs it and renames it to `path`, so
    /// that a crash leaves either the old file or the new one, never a torn one. A symbolic link
    /// keeps being one: its target is written so. A device, a FIFO or /dev/std* is written
    /// through, as `>` in a shell does (a rename would replace the node with a file).
    public static func write(_ data: Data, to path: String, what: String) throws(FileError) {
        try checkWritable(path, what: what)
        if writesThrough(path) {
            // This process's own descriptor where the path names one: a shell's `>>` keeps appending,
            // and what print() holds in its buffer goes first.
            if ownDescriptor(path) != nil { fflush(nil) }  // nil: every output stream
            let fd = ownDescriptor(path) ?? open(path, O_WRONLY)
            guard fd >= 0 else { throw FileError(path, "cannot write the \(what) (\(lastError))") }
            defer { if ownDescriptor(path) == nil { close(fd) } }
            if let failure = writeWhole(data, to: fd) { throw FileError(path, "cannot write the \(what) (\(failure))") }
            return
        }
        let path = symlinkTarget(path) ?? path
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
        let folder = open(
            (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent,
            O_RDONLY)
        if folder >= 0 { fsync(folder); close(folder) }
    }

    /// Whether `path` is written through rather than replaced: standard output and error by
    /// name (/dev/stdout, /dev/fd/N, /proc/self/fd/N), or an existing node that is neither a
    /// file nor a folder (a character device, a FIFO, a socket).
    static func writesThrough(_ path: String) -> Bool {
        if ["/dev/stdout", "/dev/stderr", "/dev/fd/", "/proc/self/fd/"].contains(where: { path.hasPrefix($0) }) {
            return true
        }
        var status = stat()
        guard stat(path, &status) == 0 else { return false }
        return ![S_IFREG, S_IFDIR].contains(status.st_mode & S_IFMT)
    }

    /// The descriptor of this process a path names: 1 for /dev/stdout, 2 for /dev/stderr, N for
    /// /dev/fd/N and /proc/self/fd/N.
    static func ownDescriptor(_ path: String) -> Int32? {
        switch path {
        case "/dev/stdout": 1
        case "/dev/stderr": 2
        default:
            ["/dev/fd/", "/proc/self/fd/"].lazy.compactMap {
                path.hasPrefix($0) ? Int32(path.dropFirst($0.count)) : nil
            }.first
        }
    }

    /// The file a symbolic link at `path` leads to (followed to the end, made absolute), or nil
    /// when `path` is not a link.
    static func symlinkTarget(_ path: String) -> String? {
        var status = stat()
        guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFLNK else { return nil }
        if let resolved = realpath(path, nil) { defer { free(resolved) }; return String(cString: resolved) }
        // A dangling link: the file it names, relative to the link's folder.
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) else { return nil }
        return target.hasPrefix("/")
            ? target : ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(target)
    }

    /// Which file `path` is, for telling whether two paths are one: its device and inode, or, for
    /// a file not there yet, its folder's and its name.
    static func identity(_ path: String) -> String {
        var status = stat()
        if stat(path, &status) == 0 { return "\(status.st_dev):\(status.st_ino)" }
        let folder =
            (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        guard stat(folder, &status) == 0 else { return path }
        return "\(status.st_dev):\(status.st_ino)/\((path as NSString).lastPathComponent)"
    }

    /// The first output that names the same file as an input or as another output (by device
    /// and inode, whatever the spelling: links, "./", another path to it), as a sentence; nil
    /// when there is none. Commands refuse such a pair (64) before any work: the output would
    /// destroy the input, or one output the other. Writing through (/dev/stdout) is no clash.
    public static func clash(
        outputs: [(option: String, path: String)], inputs: [(option: String, path: String)]
    ) -> String? {
        var seen: [String: (option: String, path: String)] = [:]
        for input in inputs { seen[identity(input.path)] = input }
        for output in outputs where !writesThrough(output.path) {
            let key = identity(output.path)
            if let other = seen[key] {
                return
                    "\(output.option) \(output.path) is the same file as \(other.option) \(other.path); give another path"
            }
            seen[key] = output
        }
        return nil
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
