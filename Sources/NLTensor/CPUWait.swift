import Foundation

/// How long this process's threads have waited for a CPU, runnable but not running, as Linux's
/// scheduler counts it (/proc/self/task/*/schedstat, its second field in nanoseconds): the time
/// other threads, mostly other processes', held the cores these needed. A timing taken while it
/// grows measures them as much as the code timed. On a quiet 2-core Zen 4 the tuning of
/// nl_i3d_r50's convolutions waited 0.2-0.3% of its threads' time, beside one `yes` 38-46%. The
/// time a CPU quota of the process's cgroup held them back (docker --cpus 1.5 for 2 threads: 7%) is
/// not counted: that is the run's own use of its share, the same at every run. Threads that ended
/// before `share` are not counted either.
public struct CPUWait {
    let waited: Double, throttled: Double
    let started = Date()

    /// Counting from now; nil where the scheduler's counts cannot be read (not Linux).
    public init?() {
        guard let waited = Self.secondsWaited else { return nil }
        (self.waited, throttled) = (waited, Parallel.throttledSeconds ?? 0)
    }

    /// The share of `threads` threads' time since `init` that they spent waiting for a CPU: 0 on a
    /// quiet machine, 0.5 where other processes took half of it.
    public func share(threads: Int) -> Double? {
        let elapsed = Date().timeIntervalSince(started)
        guard let now = Self.secondsWaited, elapsed > 0 else { return nil }
        let heldByQuota = (Parallel.throttledSeconds ?? 0) - throttled
        return max(0, now - waited - heldByQuota) / (elapsed * Double(max(threads, 1)))
    }

    /// Every thread's wait so far, summed.
    static var secondsWaited: Double? {
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else {
            return nil
        }
        var nanoseconds = 0
        for thread in threads {
            // Unreadable or empty where the thread ended since the listing.
            let stat = (try? String(contentsOfFile: "/proc/self/task/\(thread)/schedstat", encoding: .utf8)) ?? ""
            let fields = stat.split(separator: " ")
            if fields.count >= 2, let wait = Int(fields[1]) { nanoseconds += wait }
        }
        return Double(nanoseconds) * 1e-9
    }
}
