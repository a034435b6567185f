import Foundation
import NLData
import NLLayers
import NLTensor
import NLVideo

/// The commands' exit codes (sysexits), so cron and scripts can act on them.
public enum ExitStatus: Int32, Sendable {
    /// Done, or nothing left to do.
    case done = 0
    /// Bad usage or config.
    case usage = 64
    /// Bad data: no readable videos, a bad annotation file, a file with the wrong content.
    case data = 65
    case internalError = 70
    /// Cannot read or write a file: the work directory, a checkpoint, an input.
    case io = 74
    /// Not finished yet (time budget, signal, another run holds the lock): run again to continue.
    case notFinished = 75

    /// What the status says, as every command's --help words it.
    public var meaning: String {
        switch self {
        case .done: "done"
        case .usage: "usage or config error"
        case .data: "data error"
        case .internalError: "internal error"
        case .io: "I/O error"
        case .notFinished: "not finished (run the same command again)"
        }
    }

    /// "Exit codes: 0 done, 64 usage or config error, ...": a command's statuses for its --help,
    /// each with its meaning, or with `words` where the command says more.
    public static func legend(_ statuses: ExitStatus..., saying words: [ExitStatus: String] = [:]) -> String {
        "Exit codes: " + statuses.map { "\($0.rawValue) \(words[$0] ?? $0.meaning)" }.joined(separator: ", ") + "."
    }
}

/// A checkpoint that cannot be used: not a training checkpoint, an impossible position, NaN
/// weights, momentum of the wrong shape, none readable in a work directory. Exit 65.
public struct CheckpointError: Error, CustomStringConvertible {
    public let path: String
    public let problem: String
    public init(_ path: String, _ problem: String) { (self.path, self.problem) = (path, problem) }
    public var description: String { "\(path): \(problem)" }
}

/// Another run holds the work directory. Exit 75: try again when it ends.
public struct WorkDirectoryLocked: Error, CustomStringConvertible {
    public let path: String
    public let holder: String
    public var description: String { "another run holds \(path) (\(holder)); try again when it ends" }
}

/// Training or evaluation that cannot go on: a loss that is not finite, another process's
/// malformed results. Exit 70.
public struct TrainingError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A request that cannot be carried out as asked (an impossible clip shape). Exit 64.
public struct UsageError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The failure of rank 0 of a data-parallel job, which every rank meets at once: rank 0 reports
/// it, and every rank exits with its status.
public struct SharedFailure: Error, CustomStringConvertible {
    public let status: ExitStatus
    public let message: String
    public var description: String { message }
}

/// The exit status and message for any error a command can meet.
public func exitStatus(for error: Error) -> (ExitStatus, String) {
    switch error {
    case let e as SharedFailure: (e.status, e.message)
    case let e as CheckpointError: (.data, e.description)
    case let e as WorkDirectoryLocked: (.notFinished, e.description)
    case let e as PlanStopped: (.notFinished, e.description)
    case let e as TrainingError: (.internalError, e.description)
    case let e as UsageError: (.usage, e.description)
    case let e as ConfigError: (.usage, e.description)
    case let e as SafeTensorsError: (.data, e.description)
    case let e as FileError: (.io, e.description)
    case let e as StateDictError: (.data, e.description)
    case let e as DataError: (.data, e.description)
    case let e as VideoError: (e.kind == .invalidRequest ? .usage : .data, e.description)
    default: (.internalError, "\(error)")
    }
}
