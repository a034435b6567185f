import Foundation
import NLTensor
import Testing

/// The cores this process may use (`Parallel.usableCores`): CPU lists, and cgroup CPU quotas as
/// cgroup v1 and v2 write them, on a host and in a container.
struct UsableCoresTests {
    /// CPU lists as Linux writes them in /proc/self/status (Cpus_allowed_list), and text that is
    /// not one; the cores this process may use are at least 1 and at most the machine's.
    @Test func coresOfACPUList() {
        #expect(Parallel.cores(inList: "0") == 1)
        #expect(Parallel.cores(inList: "0-3,8,10-11") == 7)
        #expect(Parallel.cores(inList: "0-63") == 64)
        for notAList in ["", "3-1", "x", "0-", "-1", "0-1-2", "1,a"] {
            #expect(Parallel.cores(inList: notAList) == nil, "\(notAList)")
        }
        #expect((1...ProcessInfo.processInfo.activeProcessorCount).contains(Parallel.usableCores))
    }

    static let version2 =
        "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate"
    /// This machine's kind: cgroup v1 controllers, and v2 mounted beside them without any.
    static let hybrid = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """

    func quota(_ mounts: String, _ membership: String, _ files: [String: String]) -> Double? {
        Parallel.cgroupQuota(mounts: mounts, membership: membership, read: { files[$0] })
    }

    @Test func cgroupVersion2Quotas() {
        // A container (docker --cpus 1.5): its own cgroup is the root it sees.
        #expect(quota(Self.version2, "0::/", ["/sys/fs/cgroup/cpu.max": "150000 100000"]) == 1.5)
        // A host's nested cgroups (a Kubernetes pod in its QoS class): the tighter one counts.
        let nested = [
            "/sys/fs/cgroup/kubepods/pod1/cpu.max": "400000 100000", "/sys/fs/cgroup/kubepods/cpu.max": "200000 100000",
        ]
        #expect(quota(Self.version2, "0::/kubepods/pod1", nested) == 2)
        #expect(quota(Self.version2, "0::/user.slice", ["/sys/fs/cgroup/user.slice/cpu.max": "max 100000"]) == nil)
        #expect(quota(Self.version2, "0::/", [:]) == nil)
    }

    @Test func cgroupVersion1Quotas() {
        let files = [
            "/sys/fs/cgroup/cpu/batch/cpu.cfs_quota_us": "50000",
            "/sys/fs/cgroup/cpu/batch/cpu.cfs_period_us": "100000",
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1", "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000",
        ]
        #expect(quota(Self.hybrid, "2:cpuacct:/batch\n1:cpu:/batch\n0::/", files) == 0.5)
        #expect(quota(Self.hybrid, "1:cpu:/\n0::/", files) == nil)
        // A container on v1: the controllers mounted together, the mount's root its own cgroup.
        let container = "1255 1250 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct"
        let limit = [
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "300000",
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000",
        ]
        #expect(quota(container, "4:cpu,cpuacct:/docker/abc", limit) == 3)
        // Files that are not what the kernel writes, and no cgroup file system.
        #expect(
            quota(
                Self.hybrid, "1:cpu:/",
                ["/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "lots", "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000"])
                == nil)
        #expect(quota("", "", [:]) == nil && quota("garbage", "x:y", [:]) == nil)
    }

    /// The time CPU quotas held this process's threads back (what CPUWait leaves out), from
    /// cpu.stat as each version writes it: summed over the group and its ancestors, nil where no
    /// group says.
    @Test func cgroupThrottledTime() {
        func throttled(_ mounts: String, _ membership: String, _ files: [String: String]) -> Double? {
            Parallel.cgroupThrottledSeconds(mounts: mounts, membership: membership, read: { files[$0] })
        }
        let v2 = [
            "/sys/fs/cgroup/kubepods/pod1/cpu.stat":
                "usage_usec 8113\nuser_usec 7000\nsystem_usec 1113\nnr_periods 12\nnr_throttled 3\nthrottled_usec 250000",
            "/sys/fs/cgroup/kubepods/cpu.stat": "usage_usec 9000\nnr_throttled 1\nthrottled_usec 50000",
            "/sys/fs/cgroup/cpu.stat": "usage_usec 6905727651\nuser_usec 5999435540",  // the root: no quota
        ]
        #expect(throttled(Self.version2, "0::/kubepods/pod1", v2) == 0.3)
        // v1 in nanoseconds; the v2 hierarchy beside it (this machine's kind) has no quotas.
        let v1 = [
            "/sys/fs/cgroup/cpu/batch/cpu.stat":
                "nr_periods 54\nnr_throttled 24\nthrottled_time 658866112\nnr_bursts 0",
            "/sys/fs/cgroup/cpu/cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0",
            "/sys/fs/cgroup/unified/cpu.stat": "usage_usec 6905727651",
        ]
        #expect(throttled(Self.hybrid, "1:cpu:/batch\n0::/", v1) == 0.658866112)
        #expect(throttled(Self.hybrid, "1:cpu:/batch\n0::/", [:]) == nil)
        #expect(throttled("", "", [:]) == nil)
    }
}
