import Foundation
import NLData
import NLDistributed
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
    /// In a data-parallel job: every rank met it at once (rank 0 reports it; all exit with it).
    public let shared: Bool
    public init(_ status: ExitStatus, _ message: String, shared: Bool = false) {
        self.status = status
        self.message = message
        self.shared = shared
    }
    public var description: String { message }
}

/// The exit status and message for any error a command can meet.
public func exitStatus(for error: Error) -> (ExitStatus, String) {
    switch error {
    case let e as CommandError: (e.status, e.message)
    case let e as ConfigError: (.usage, e.description)
    case let e as SafeTensorsError: (.data, e.description)
    case let e as FileError: (.io, e.description)
    case let e as StateDictError: (.data, e.description)
    case let e as DataError: (.data, e.description)
    case let e as VideoError: (e.kind == .invalidRequest ? .usage : .data, e.description)
    default: (.internalError, "\(error)")
    }
}

/// Prints "command: message" to standard error and exits with the error's status. In a
/// data-parallel job an error of one rank ends every rank (MPI_Abort, with the same status), so
/// none is left waiting for it; an error every rank shares is printed by rank 0 alone.
public func exitReporting(_ error: Error, command: String) -> Never {
    let (status, message) = exitStatus(for: error)
    guard let job = Communicator.world, job.size > 1 else {
        FileHandle.standardError.write(Data("\(command): \(message)\n".utf8))
        exit(status.rawValue)
    }
    if let shared = error as? CommandError, shared.shared {
        if job.isRoot { FileHandle.standardError.write(Data("\(command): \(message)\n".utf8)) }
        exit(status.rawValue)
    }
    FileHandle.standardError.write(Data("\(command) (rank \(job.rank) of \(job.size)): \(message)\n".utf8))
    job.abort(status: status.rawValue)
}
