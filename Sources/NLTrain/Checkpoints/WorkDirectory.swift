import Foundation
import Synchronization
import NLData
import NLLayers
import NLModels
import NLTensor
import NLVideo

/// A run's folder: checkpoints, the last_checkpoint pointer, the resolved config, logs, metrics,
/// bad_videos.txt, and the lock that keeps a second run out.
public final class WorkDirectory {
    public let path: String
    private var lockDescriptor: Int32 = -1

    public init(_ path: String) throws {
        self.path = path
        try Files.makeDirectory(path, what: "work directory")
        guard access(path, W_OK) == 0 else { throw FileError(path, "the work directory is not writable") }
    }

    deinit { unlock() }

    public func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Takes the directory's lock for this process's life, or fails with exit 75 naming the
    /// process that holds it. The lock is the kernel's (flock), so a crashed run leaves none.
    /// The file is removed when the run ends (`unlock`), so one that is there is held: a run
    /// that takes the lock of a file another has just removed would hold a lock nobody sees, so
    /// it checks that the path still names the file it locked, and tries again otherwise.
    public func lock() throws {
        let lockPath = file("lock")
        while true {
            let fd = open(lockPath, O_RDWR | O_CREAT, 0o644)
            guard fd >= 0 else { throw FileError(lockPath, "cannot open the lock file") }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                let holder =
                    (try? String(contentsOfFile: lockPath, encoding: .utf8))?.trimmingCharacters(
                        in: .whitespacesAndNewlines) ?? "unknown"
                close(fd)
                throw WorkDirectoryLocked(path: path, holder: holder.isEmpty ? "unknown process" : holder)
            }
            var locked = stat(), named = stat()
            guard fstat(fd, &locked) == 0, stat(lockPath, &named) == 0, locked.st_ino == named.st_ino,
                locked.st_dev == named.st_dev
            else {
                close(fd)  // removed by the run that held it, between our open and our lock
                continue
            }
            let host = ProcessInfo.processInfo.hostName
            let text = "pid \(getpid()) on \(host) since \(ISO8601DateFormatter().string(from: Date()))\n"
            ftruncate(fd, 0)
            _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
            lockDescriptor = fd
            return
        }
    }

    /// Gives the lock up and removes its file (still holding it, so no run can take it
    /// meanwhile): a lock file left in a work directory reads as a run under way.
    public func unlock() {
        guard lockDescriptor >= 0 else { return }
        unlink(file("lock"))
        close(lockDescriptor)
        lockDescriptor = -1
    }

    /// Writes text to a file of the directory, atomically.
    public func write(_ text: String, to name: String) throws {
        try Files.write(text, to: file(name), what: name)
    }

    /// Appends a line to a file of the directory (the log, the metrics). One that cannot be
    /// written (a full disk) is said once on standard error, and the run goes on: its next
    /// checkpoint then stops it with the reason, or finds room again.
    public func append(_ line: String, to name: String) {
        guard let failure = Files.append(line + "\n", to: file(name)),
            failedAppends.withLock({ $0.insert(name).inserted })
        else { return }
        Files.emit(
            "warning: cannot add to \(file(name)) (\(failure)); its lines are lost until there is room\n",
            to: .standardError)
    }
    private let failedAppends = Mutex<Set<String>>([])  // appended to by loader threads too

    /// Writes a checkpoint atomically and, unless it is only the best one, points last_checkpoint at it.
    public func write(_ checkpoint: Checkpoint, name: String, makeLast: Bool = true) throws {
        try checkpoint.write(to: file(name))
        if makeLast { try write(name + "\n", to: "last_checkpoint") }
    }

    /// Removes what a killed run left half-written, and nothing else: regular files named
    /// `<a file nltrain writes here>.tmp-<pid>` (Files.write's temporary) whose process is gone.
    /// A user's `notes.tmp-keep` or `backup.tmp-2025/` stays. Returns the names removed.
    public func removeUnfinishedWrites() -> [String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { name in
            guard let mark = name.range(of: ".tmp-", options: .backwards), let pid = Int32(name[mark.upperBound...]),
                pid > 0,
                Self.writesFile(named: String(name[..<mark.lowerBound]))
            else { return false }
            var status = stat()
            guard lstat(file(name), &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return false }
            return kill(pid, 0) != 0 && errno == ESRCH
        }
        return names.filter { unlink(file($0)) == 0 }
    }

    /// Whether nltrain writes a file of this name into a work directory (atomically, through a
    /// temporary beside it).
    static func writesFile(named name: String) -> Bool {
        ["best.safetensors", "last_checkpoint", "config.cfg", "curves.svg"].contains(name)
            || (name.hasPrefix("iter_") && name.hasSuffix(".safetensors")
                && name.dropFirst(5).dropLast(12).allSatisfy(\.isNumber))
    }

    /// metrics.jsonl as of a checkpoint at `globalIteration`: the lines a killed run wrote after
    /// it go, so that the resumed run's lines for those iterations are the only ones (and a
    /// validation still to do is the next run's). Lines that are not JSON stay.
    public func keepMetrics(upTo globalIteration: Int, validationPending: Bool) throws {
        guard let text = try? String(contentsOfFile: file("metrics.jsonl"), encoding: .utf8) else { return }
        let lines = text.split(whereSeparator: \.isNewline)
        let kept = lines.filter { line in
            guard let record = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let step = record["global_iteration"] as? Int
            else { return true }
            return step < globalIteration
                || (step == globalIteration && !(validationPending && record["mode"] as? String == "val"))
        }
        if kept.count < lines.count { try write(kept.map { $0 + "\n" }.joined(), to: "metrics.jsonl") }
    }

    /// The checkpoint to resume from: the one last_checkpoint names or, when it cannot be read, the
    /// newest other readable one. `refused` hears of each file passed over and why. When there are
    /// checkpoints but none can be read, an error (65) that names them: starting from scratch
    /// over them would silently discard the run.
    public func latestCheckpoint(refused: (String) -> Void) throws -> Checkpoint? {
        let pointed = (try? String(contentsOfFile: file("last_checkpoint"), encoding: .utf8))?.trimmingCharacters(
            in: .whitespacesAndNewlines)
        let names = checkpointNames()
        // Newest first: the pointed one, then by the global iteration in the name.
        let ordered = (pointed.flatMap { names.contains($0) ? [$0] : nil } ?? []) + names.filter { $0 != pointed }
        var unreadable: [String] = []
        for name in ordered {
            do {
                return try read(name)
            } catch {
                refused("refusing \(file(name)): \(exitStatus(for: error).1)")
                unreadable.append(name)
            }
        }
        guard unreadable.isEmpty else {
            throw CheckpointError(
                path,
                "no checkpoint can be read (\(unreadable.joined(separator: ", "))); rather than start from scratch "
                    + "over them, nltrain stops: restore a readable one, or give --start-over (they are then set aside, not deleted)"
            )
        }
        return nil
    }

    /// Periodic checkpoints beyond the newest `keep` that load, removed; those that do not load
    /// are neither counted nor removed, so the last that loads stays (best.safetensors is never
    /// among them).
    public func prune(keep: Int) {
        for name in checkpointNames().filter({ (try? read($0)) != nil }).dropFirst(keep) {
            try? FileManager.default.removeItem(atPath: file(name))
        }
    }

    /// Moves every checkpoint, best.safetensors and last_checkpoint into a folder of their own,
    /// for a run that starts over; returns the folder, or nil when there was nothing to move.
    public func setAsideCheckpoints() throws -> String? {
        let names =
            checkpointNames()
            + ["best.safetensors", "last_checkpoint"].filter { FileManager.default.fileExists(atPath: file($0)) }
        guard !names.isEmpty else { return nil }
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        let folder = file("previous-\(formatter.string(from: Date()))")
        try Files.makeDirectory(folder, what: "folder for the earlier checkpoints")
        for name in names {
            guard rename(file(name), "\(folder)/\(name)") == 0 else {
                throw FileError(
                    file(name), "cannot move it into \(folder) (\(String(cString: strerror(errno)).lowercased()))")
            }
        }
        return folder
    }

    /// The periodic checkpoints' names, newest (by the global iteration in the name) first.
    private func checkpointNames() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter {
            $0.hasPrefix("iter_") && $0.hasSuffix(".safetensors")
        }
        .sorted { iterationInName($0) > iterationInName($1) }
    }

    /// A training checkpoint of the directory that a run can resume from, or an error saying why
    /// it cannot be one: the same rules as resuming's, so that pruning counts only what loads.
    private func read(_ name: String) throws -> Checkpoint {
        let checkpoint = try Checkpoint(path: file(name))
        guard checkpoint.state != nil else {
            throw CheckpointError(
                checkpoint.path, "not a training checkpoint (its metadata has no format \(TrainingState.format))")
        }
        try checkpoint.checkValues()
        return checkpoint
    }
}

/// Checkpoints are named iter_<global iteration, zero-padded>.safetensors.
func checkpointName(globalIteration: Int) -> String { String(format: "iter_%08d.safetensors", globalIteration) }

private func iterationInName(_ name: String) -> Int {
    Int(name.dropFirst("iter_".count).prefix { $0.isNumber }) ?? -1
}
