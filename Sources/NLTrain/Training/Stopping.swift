import Foundation
import Synchronization
import NLData
import NLDistributed
import NLLayers
import NLVideo

/// SIGTERM, SIGINT, SIGHUP (the terminal or ssh session gone; not under nohup) and SIGUSR1
/// (Slurm's warning before the end of a job's time, `--signal=B:USR1@120`) ask a run to stop at
/// the next iteration boundary, after a checkpoint. SIGPIPE is ignored: an output that closes
/// (`| head`, a `| tee` stopped by the same Ctrl-C) would otherwise kill the run before that
/// checkpoint, and train.log keeps every line.
public enum StopSignal {
    static let received = Atomic<Int32>(0)

    /// The signals that stop a command.
    static let stopping = [SIGTERM, SIGINT, SIGHUP, SIGUSR1]

    /// Called first thing by every command: a parent may have started it with these blocked
    /// (signal masks are inherited; Foundation's Process hands a child the mask of its thread,
    /// where Dispatch blocks SIGTERM), and then a stop would never arrive.
    public static func unblock() { mask(SIG_UNBLOCK) }

    /// Holds the stopping signals back until `install`: nltrain's first act, so that one that
    /// comes while it starts (or starts itself again on another kernel) waits for its handler.
    public static func hold() { mask(SIG_BLOCK) }

    private static func mask(_ how: Int32) {
        var signals = sigset_t()
        sigemptyset(&signals)
        for s in stopping { sigaddset(&signals, s) }
        pthread_sigmask(how, &signals, nil)
    }

    /// nltrain's handlers, installed before anything else it does: from then on a stop waits
    /// for a checkpoint (or, before training, ends the run at once with 75).
    public static func install() {
        for s in [SIGTERM, SIGINT, SIGUSR1] { signal(s) { StopSignal.received.store($0, ordering: .relaxed) } }
        // Under nohup SIGHUP is ignored, to outlive the terminal: it stays so.
        if unsafeBitCast(signal(SIGHUP, SIG_IGN), to: Int.self) != unsafeBitCast(SIG_IGN, to: Int.self) {
            signal(SIGHUP) { StopSignal.received.store($0, ordering: .relaxed) }
        }
        signal(SIGPIPE, SIG_IGN)
        unblock()
    }
}

/// Why a run stops before its end; the ranks of a job agree on the largest any of them asks for.
enum StopReason: Int, Comparable {
    case none = 0, timeBudget, sigusr1, sigint, sighup, sigterm

    static func < (a: StopReason, b: StopReason) -> Bool { a.rawValue < b.rawValue }

    func describe(maxTime: TimeInterval?) -> String {
        switch self {
        case .none: "nothing"
        case .timeBudget: "the time budget (--max-time \(ProgressDisplay.duration(maxTime ?? 0)))"
        case .sigusr1: "SIGUSR1 (the scheduler's warning)"
        case .sigint: "SIGINT"
        case .sighup: "SIGHUP"
        case .sigterm: "SIGTERM"
        }
    }
}

extension Trainer {
    /// Why the run must stop now, if it must: a signal (on any rank), or the time budget (rank
    /// 0's clock). Every rank calls it at the same points and gets the same answer.
    func stopReason() -> StopReason {
        stopReason(
            local: receivedSignal()
                ?? (parallel.isRoot && options.maxTime.map { Date().timeIntervalSince(started) >= $0 } == true
                    ? .timeBudget : .none))
    }

    /// A signal received by any rank, or .none. Validation stops for signals alone: the time
    /// budget waits for its end, or a validation longer than the budget would never finish.
    func signalled() -> StopReason { stopReason(local: receivedSignal() ?? .none) }

    /// The stop a signal to this process asks for, if one came (not libc's signal()).
    func receivedSignal() -> StopReason? {
        switch StopSignal.received.load(ordering: .relaxed) {
        case SIGTERM: .sigterm
        case SIGINT: .sigint
        case SIGHUP: .sighup
        case SIGUSR1: .sigusr1
        default: nil
        }
    }

    func stopReason(local: StopReason) -> StopReason {
        StopReason(rawValue: parallel.maximum(local.rawValue)) ?? .none
    }
}
