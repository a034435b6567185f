import Foundation
import NLData
import NLLayers
import NLModels
import NLTensor
import NLTrain
import NLVideo

/// What a command gave: its exit status, standard output (as bytes and as text) and standard error.
public struct CommandResult: Sendable {
    public let status: Int32
    public let output: Data
    public let stderr: String
    public var stdout: String { String(decoding: output, as: UTF8.self) }
}

/// The folder the built commands (nltrain, nleval, ...) sit in, beside the test bundle.
public let commandDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path

/// Runs a built command by its name, or any program by its absolute path, in `directory` (default:
/// the current one), with `environment` added to this process's and the built commands first on
/// PATH; waits for it and returns what it gave. The one way tests start processes.
public func run(
    _ command: String, _ arguments: [String], in directory: String? = nil,
    environment: [String: String] = [:]
) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: command.hasPrefix("/") ? command : "\(commandDirectory)/\(command)")
    process.arguments = arguments
    var variables = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    variables["PATH"] = commandDirectory + ":" + (variables["PATH"] ?? "/usr/bin:/bin")
    variables["NL_BIN"] = variables["NL_BIN"] ?? commandDirectory  // the scripts run the commands of this build
    process.environment = variables
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read standard error on another thread: a child filling one pipe while we wait on the other would deadlock.
    let errors = ErrorReader(err.fileHandleForReading)
    let output = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, output: output, stderr: errors.text())
}

private final class ErrorReader: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)
    init(_ handle: FileHandle) {
        Thread { [self] in
            data = handle.readDataToEndOfFile(); done.signal()
        }.start()
    }
    func text() -> String { done.wait(); return String(decoding: data, as: UTF8.self) }
}

/// Runs one of the repository's scripts, which must succeed.
func runScript(_ name: String, _ arguments: [String]) {
    let script = "\(repositoryRoot)/scripts/\(name)"
    let r = try! run(script, arguments)
    precondition(r.status == 0, "\(script) \(arguments.joined(separator: " ")) failed: \(r.stderr)")
}

/// A process running in the background, for tests that signal it part-way (start, wait until,
/// send, finish): its output goes to files that can be read while it runs. The one way tests
/// start processes they signal.
public final class Launched {
    public let process = Process()
    public let stdoutPath: String, stderrPath: String

    /// Starts a built command by its name, or any program by its absolute path. Foundation's
    /// Process hands the child the mask of the test's thread, where Dispatch blocks SIGTERM; the
    /// commands unblock it themselves, a script cannot: `plainSignals` starts it through a
    /// trampoline that clears the mask and restores the default actions, as a shell or cron would.
    public init(
        _ command: String, _ arguments: [String], environment: [String: String] = [:], plainSignals: Bool = false
    ) throws {
        let folder = scratchDirectory("launched", made: true)
        (stdoutPath, stderrPath) = ("\(folder)/stdout", "\(folder)/stderr")
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        let program = command.hasPrefix("/") ? command : "\(commandDirectory)/\(command)"
        if plainSignals {
            let trampoline =
                "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); "
                + "signal.signal(signal.SIGPIPE, signal.SIG_DFL); signal.signal(signal.SIGXFSZ, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-c", trampoline, program] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = arguments
        }
        process.environment = ProcessInfo.processInfo.environment.merging(
            ["NL_BIN": commandDirectory].merging(environment) { $1 }
        ) { $1 }
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
    }

    public var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Waits until `condition` holds (checked every 20 ms, for at most `seconds`); false if it
    /// never did or the process ended first.
    @discardableResult
    public func wait(until condition: () -> Bool, seconds: Double = 120) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            if !process.isRunning { return false }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return false
    }

    /// Whether the process has a handler for `signal` (/proc/PID/status, SigCgt).
    public func catches(_ signal: Int32) -> Bool {
        let status = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)) ?? ""
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigCgt:") }),
            let mask = UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return false }
        return mask & (1 << UInt64(signal - 1)) != 0
    }

    /// Sends `signal`, waits for the end and returns the exit status.
    public func signal(_ signal: Int32) -> Int32 {
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        return process.terminationStatus
    }
}
