import Foundation
import NLData
import NLModels

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
}

/// An error a command reports as one line and an exit status.
public struct CommandError: Error, CustomStringConvertible {
    public let status: ExitStatus
    public let message: String
    public init(_ status: ExitStatus, _ message: String) {
        self.status = status
        self.message = message
    }
    public var description: String { message }
}

/// The exit status and message for any error a command can meet.
public func exitStatus(for error: Error) -> (ExitStatus, String) {
    switch error {
    case let e as CommandError: (e.status, e.message)
    case let e as ConfigError: (.usage, e.description)
    case let e as SafeTensorsError: (e.problem.hasPrefix("cannot") ? .io : .data, e.description)
    case let e as StateDictError: (.data, e.description)
    case let e as DataError: (.data, e.description)
    case let e as VideoError: (.data, e.description)
    default: (.internalError, "\(error)")
    }
}

/// Prints "command: message" to standard error and exits with the error's status.
public func exitReporting(_ error: Error, command: String) -> Never {
    let (status, message) = exitStatus(for: error)
    FileHandle.standardError.write(Data("\(command): \(message)\n".utf8))
    exit(status.rawValue)
}
