import Foundation

/// How many cores this process may use, which Foundation's activeProcessorCount (every online
/// core) does not know: the default thread count; and how long its cgroups' CPU quotas have held
/// its threads back.
extension Parallel {
    /// The fewest of:
    /// - the online cores;
    /// - the CPUs of this process's affinity mask (set by taskset, by mpirun's binding, by Slurm's
    ///   --cpus-per-task, by a container's cpuset): a rank bound to one core of a 64-core node runs
    ///   1 thread, not 64;
    /// - its cgroups' CPU quota, rounded up (docker --cpus, a Kubernetes CPU limit): threads beyond
    ///   it only get the process throttled until the scheduler's next period.
    /// Whatever cannot be read (not Linux, no cgroup file system) sets no bound.
    public static var usableCores: Int {
        let online = ProcessInfo.processInfo.activeProcessorCount
        let mask = procFields("/proc/self/status")["Cpus_allowed_list"].flatMap(cores(inList:))
        let quota = cgroupQuota(
            mounts: text("/proc/self/mountinfo") ?? "", membership: text("/proc/self/cgroup") ?? "", read: text)
        return max(1, min(online, mask ?? online, quota.map { Int($0.rounded(.up)) } ?? online))
    }

    /// The number of CPUs in a Linux CPU list ("0-3,8,10-11": 7); nil if it is not one.
    public static func cores(inList list: String) -> Int? {
        var count = 0
        for part in list.split(separator: ",") {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
            switch bounds.count {
            case 1: guard bounds[0] != nil else { return nil }; count += 1
            case 2:
                guard let low = bounds[0], let high = bounds[1], low <= high else { return nil };
                count += high - low + 1
            default: return nil
            }
        }
        return count > 0 ? count : nil
    }

    /// The tightest CPU quota, in CPUs, of the cgroups this process is in and their ancestors, from
    /// /proc/self/mountinfo (`mounts`: where each cgroup hierarchy is mounted) and /proc/self/cgroup
    /// (`membership`); nil where none is set. cgroup v2 says it in cpu.max ("150000 100000": 1.5
    /// CPUs; "max 100000": none), v1 in the cpu controller's cpu.cfs_quota_us (-1: none) and
    /// cpu.cfs_period_us.
    public static func cgroupQuota(mounts: String, membership: String, read: (String) -> String?) -> Double? {
        cgroupDirectories(mounts: mounts, membership: membership).compactMap { directory, version2 in
            version2
                ? read("\(directory)/cpu.max").flatMap { quota($0) }
                : read("\(directory)/cpu.cfs_quota_us").flatMap { q in
                    read("\(directory)/cpu.cfs_period_us").flatMap { quota("\(q) \($0)") }
                }
        }.min()
    }

    /// The seconds the CPU quotas of this process's cgroups and their ancestors have held their
    /// threads back so far (cpu.stat: v2's throttled_usec, v1's throttled_time in nanoseconds),
    /// summed; nil where none says. Threads held back by a quota wait for a CPU as they do behind
    /// other processes, but for their own group's use of it (CPUWait).
    public static func cgroupThrottledSeconds(mounts: String, membership: String, read: (String) -> String?) -> Double?
    {
        let seconds = cgroupDirectories(mounts: mounts, membership: membership).compactMap { directory, version2 in
            let (key, unit) = version2 ? ("throttled_usec", 1e-6) : ("throttled_time", 1e-9)
            return read("\(directory)/cpu.stat")?.split(separator: "\n").lazy.compactMap { line -> Double? in
                let fields = line.split(separator: " ")
                return fields.count == 2 && fields[0] == key ? Double(fields[1]).map { $0 * unit } : nil
            }.first
        }
        return seconds.isEmpty ? nil : seconds.reduce(0, +)
    }

    /// This process's cgroupThrottledSeconds.
    static var throttledSeconds: Double? {
        cgroupThrottledSeconds(
            mounts: text("/proc/self/mountinfo") ?? "", membership: text("/proc/self/cgroup") ?? "", read: text)
    }

    /// The folders of the cgroups this process is in and their ancestors, in the hierarchies that
    /// hold CPU quotas (v2's, v1's with the cpu controller), from /proc/self/mountinfo (`mounts`)
    /// and /proc/self/cgroup (`membership`). Inside a container the hierarchy's mount root is the
    /// container's own cgroup, and the path is taken relative to it.
    private static func cgroupDirectories(mounts: String, membership: String) -> [(path: String, version2: Bool)] {
        var directories: [(String, Bool)] = []
        for line in membership.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 3 else { continue }
            let version2 = fields[0] == "0" && fields[1].isEmpty
            guard version2 || fields[1].split(separator: ",").contains("cpu"),
                let (root, mountPoint) = cgroupMount(mounts, version2: version2)
            else { continue }
            let path = fields[2]
            var relative = path == root || path.hasPrefix(root + "/") ? String(path.dropFirst(root.count)) : path
            if relative.hasSuffix("/") { relative.removeLast() }
            while true {
                // cgroup paths are absolute: relative is "" or starts with "/".
                directories.append((mountPoint + relative, version2))
                guard !relative.isEmpty else { break }
                relative = String(relative[..<(relative.lastIndex(of: "/") ?? relative.startIndex)])
            }
        }
        return directories
    }

    /// "QUOTA PERIOD" in CPUs; nil for "max" or -1 (no quota) and for text that is not that.
    static func quota(_ text: String) -> Double? {
        let parts = text.split(whereSeparator: \.isWhitespace)
        guard parts.count == 2, let quota = Double(parts[0]), let period = Double(parts[1]), quota > 0, period > 0
        else { return nil }
        return quota / period
    }

    /// The mount root and mount point of the cgroup v2 hierarchy, or of v1's with the cpu controller.
    private static func cgroupMount(_ mounts: String, version2: Bool) -> (root: String, point: String)? {
        for line in mounts.split(separator: "\n") {
            // "ID PARENT MAJOR:MINOR ROOT POINT OPTIONS ... - TYPE SOURCE SUPER_OPTIONS"
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { continue }
            let (mount, filesystem) = (halves[0].split(separator: " "), halves[1].split(separator: " "))
            guard mount.count >= 5, let type = filesystem.first else { continue }
            let cpu = filesystem.count >= 3 && filesystem[2].split(separator: ",").contains("cpu")
            if version2 ? type == "cgroup2" : (type == "cgroup" && cpu) {
                let root = String(mount[3])
                return (root == "/" ? "" : root, String(mount[4]))
            }
        }
        return nil
    }

    private static func text(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
