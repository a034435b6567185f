import Foundation
import NLData
import NLTensor
import NLVideo

/// Progress of long work: a bar redrawn in place on a terminal, plain lines otherwise (cron,
/// files), both with the rate and the time left.
public final class ProgressDisplay: @unchecked Sendable {
    public let total: Int
    public let label: String
    public let unit: String
    private let output: FileHandle
    private let interactive: Bool
    private let start = Date()
    private let initial: Int
    private var done: Int
    private var lastShown = Date.distantPast
    private var lastLinePercent = -1
    private let lock = NSLock()

    /// `interactive` defaults to whether `output` is a terminal; `completed` units were done
    /// before (a resumed run): they count towards the total, not towards the rate.
    public init(
        total: Int, label: String, unit: String = "videos", completed: Int = 0, output: FileHandle = .standardError,
        interactive: Bool? = nil
    ) {
        (self.total, self.label, self.unit, self.output) = (max(total, 0), label, unit, output)
        (initial, done) = (completed, completed)
        self.interactive = interactive ?? (isatty(output.fileDescriptor) != 0)
    }

    public func advance(by count: Int = 1) {
        lock.withLock {
            done += count
            show(final: false)
        }
    }

    /// The last state, and a newline after the bar.
    public func finish() {
        lock.withLock { show(final: true) }
    }

    private func show(final: Bool) {
        let now = Date()
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done - initial) / elapsed : 0
        let left = rate > 0 ? Double(total - done) / rate : 0
        let percent = total > 0 ? done * 100 / total : 100
        let status =
            "\(label) \(done)/\(total) \(unit), \(String(format: "%.1f", rate))/s, "
            + (final ? "took \(ProgressDisplay.duration(elapsed))" : "\(ProgressDisplay.duration(left)) left")
        if interactive {
            guard final || now.timeIntervalSince(lastShown) >= 0.1 else { return }
            lastShown = now
            let width = 30, filled = total > 0 ? width * done / total : width
            let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
            Files.emit("\r[\(bar)] \(status)\u{1B}[K\(final ? "\n" : "")", to: output)
        } else {
            // A line at every tenth of the way (the end has its own), and at least every 30 seconds.
            guard
                final
                    || (done < total && (percent / 10 > lastLinePercent / 10 || now.timeIntervalSince(lastShown) >= 30))
            else { return }
            (lastShown, lastLinePercent) = (now, percent)
            Files.emit("\(status) (\(percent)%)\n", to: output)
        }
    }

    /// 3725 seconds as "1:02:05".
    public static func duration(_ seconds: Double) -> String {
        let s = max(0, Int(seconds.rounded()))
        return s >= 3600
            ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
