import CBuildTarget
import COpenBLAS
import Foundation

/// What the CPU can do, as Linux reports it in /proc/cpuinfo: the cpuid feature bits the kernel
/// has enabled (AVX-512 is listed only when the OS saves its registers).
public struct CPUFeatures: Sendable, Equatable {
    public var vendor: String
    /// cpuid's family ("cpu family": 6 for Intel's Core and Xeon lines, 25 for AMD's Zen 3 and
    /// 4, 26 for Zen 5).
    public var family: Int
    public var model: String
    public var flags: Set<String>

    public init(vendor: String, family: Int = 0, model: String, flags: Set<String>) {
        (self.vendor, self.family, self.model, self.flags) = (vendor, family, model, flags)
    }

    /// This machine's.
    public static let current: CPUFeatures = {
        let fields = procFields("/proc/cpuinfo")  // the first processor's
        return CPUFeatures(
            vendor: fields["vendor_id"] ?? "unknown", family: fields["cpu family"].flatMap { Int($0) } ?? 0,
            model: fields["model name"] ?? "unknown CPU",
            flags: Set((fields["flags"] ?? "").split(separator: " ").map(String.init)))
    }()

    /// Whether it runs AVX-512's 512-bit operations as two 256-bit halves, so that 8-float
    /// vectors do as much work a cycle as 16-float ones: AMD's Zen 4 (family 25 with AVX-512; Zen
    /// 3, the same family, has no AVX-512, and Zen 5, family 26, executes 512 bits at once).
    public var halvesAVX512: Bool { vendor == "AuthenticAMD" && family == 25 && avx512 }

    /// AVX-512 as OpenBLAS's SkylakeX kernels use it: Foundation, BW, DQ, VL, CD.
    public var avx512: Bool { ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"].allSatisfy(flags.contains) }
    public var avx2: Bool { flags.contains("avx2") && flags.contains("fma") }

    /// The widest vector instruction set: "AVX-512+BF16", "AVX-512", "AVX2+FMA", "AVX", "SSE4.2", "SSE2".
    public var vectorISA: String {
        if avx512 { return flags.contains("avx512_bf16") ? "AVX-512+BF16" : "AVX-512" }
        if avx2 { return "AVX2+FMA" }
        if flags.contains("avx") { return "AVX" }
        return flags.contains("sse4_2") ? "SSE4.2" : "SSE2"
    }
}

/// Which of OpenBLAS's kernels sgemm runs on. A DYNAMIC_ARCH OpenBLAS (Debian's) picks them from
/// a table of CPU models while it loads; a CPU newer than its table gets an old fallback (an
/// AVX-512 Xeon of 2023 ran Debian 12's 0.3.21 on its SSE3 "Prescott" kernels: a fifth of the
/// speed). It reads OPENBLAS_CORETYPE only while it loads, before main, so a command that needs
/// another kernel starts itself again with the variable set. A user's own OPENBLAS_CORETYPE wins.
public enum BLASKernel {
    /// OpenBLAS's core names by the instructions their kernels need, oldest first. A kernel beyond
    /// what the CPU has would crash on its first instruction (OpenBLAS does not check them all).
    static let generations: [[String]] = [
        ["Unknown", "Katmai", "Coppermine", "Northwood", "Athlon", "Opteron", "Banias"],
        ["Prescott", "Opteron_SSE3", "Atom", "Nano"],
        ["Core2", "Bobcat"],
        ["Penryn", "Dunnington", "Barcelona"],
        ["Nehalem"],
        ["Sandybridge", "Bulldozer"],
        ["Piledriver", "Steamroller"],
        ["Haswell", "Zen", "Excavator"],
        ["SkylakeX"],
        ["Cooperlake"],
        ["SapphireRapids"],
    ]

    /// The kernel the commands run sgemm on (nil: none better than the oldest). For AVX2 it is
    /// Haswell on AMD CPUs too: OpenBLAS's Zen build runs the same sgemm kernel, but scales C
    /// (zeroing it, for beta 0) and packs B in generic C where Haswell's are vectorised (0.3.21
    /// to 0.3.28): 5.5% of nl_i3d_r50's step at 2x8x224 on a Zen 3 EPYC, 4.4% with Haswell's.
    /// For AVX-512 it is SkylakeX on CPUs with AVX512_BF16 too, where OpenBLAS picks Cooperlake:
    /// Cooperlake's own instructions serve bfloat16 GEMMs only, its sgemm is as fast (on an AMD
    /// EPYC Zen 4, nl_i3d_r50's step at 2x8x112: 0.223-0.228 s against 0.236-0.239 s) and rounds
    /// differently, and SkylakeX is the kernel every AVX-512 machine runs alike.
    public static func best(for cpu: CPUFeatures) -> String? {
        if cpu.avx512 { return "SkylakeX" }
        if cpu.avx2 { return "Haswell" }
        if cpu.flags.contains("avx") { return "Sandybridge" }
        if cpu.flags.contains("sse4_2") { return "Nehalem" }
        return nil
    }

    /// The kernel to ask OpenBLAS for, or nil to keep `chosen`, its own choice: `best` when
    /// `chosen` is of another generation (older, or Cooperlake's), or is Zen where the best is
    /// Haswell (see `best`). A core name not in the table is a newer OpenBLAS's own and is kept:
    /// the self-check vouches for it or falls back.
    public static func choice(for cpu: CPUFeatures, openBLASChose chosen: String) -> String? {
        guard let best = best(for: cpu), let have = generation(of: chosen), let want = generation(of: best) else {
            return nil
        }
        return have != want || (chosen.lowercased() == "zen" && best == "Haswell") ? best : nil
    }

    /// The index of `core`'s generation in `generations` (nil: a core this table does not know).
    public static func generation(of core: String) -> Int? {
        generations.firstIndex { $0.contains { $0.lowercased() == core.lowercased() } }
    }

    /// The core OpenBLAS runs on ("Haswell").
    public static var current: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// Whether OpenBLAS's kernels for `core` are AVX-512 ones (16 floats a vector). A core name
    /// the table does not know is a newer OpenBLAS's own for this CPU, taken to use what it has.
    public static func isAVX512(_ core: String, on cpu: CPUFeatures) -> Bool {
        guard let have = generation(of: core) else { return cpu.avx512 }
        return have >= generation(of: "SkylakeX")!
    }

    /// What OpenBLAS's sgemm kernels for `core` need that `cpu` lacks ("AVX-512"), or nil when it
    /// has it all or the core is not one this table knows the needs of (older than Sandybridge's
    /// AVX, or newer than this table). Such kernels die of an illegal instruction at the first
    /// sgemm. (Cooperlake's BF16 instructions serve only bfloat16 GEMMs: its sgemm needs AVX-512.)
    public static func missing(for core: String, on cpu: CPUFeatures) -> String? {
        guard let have = generation(of: core), have >= generation(of: "Sandybridge")! else { return nil }
        let allowed = best(for: cpu).flatMap(generation(of:)) ?? 0
        guard have > allowed else { return nil }
        if !cpu.flags.contains("avx") { return "AVX" }
        if have >= generation(of: "Haswell")! && !cpu.avx2 { return "AVX2 and FMA" }
        if have >= generation(of: "SkylakeX")! && !cpu.avx512 { return "AVX-512 (F, BW, DQ, VL, CD)" }
        return have >= generation(of: "Piledriver")! && !cpu.flags.contains("fma") ? "FMA" : nil
    }

    /// When the user's OPENBLAS_CORETYPE (`forced`) had OpenBLAS take kernels this CPU cannot run,
    /// says so and exits 64, where the first sgemm would die of an illegal instruction.
    static func refuseKernelsBeyondTheCPU(forced: String) {
        let cpu = CPUFeatures.current
        guard let lacking = missing(for: current, on: cpu) else { return }
        let instead = best(for: cpu).map { "the commands then choose \($0)" } ?? "OpenBLAS then chooses"
        Files.emit(
            "OPENBLAS_CORETYPE=\(forced) has OpenBLAS run its \(current) kernels, which need \(lacking); "
                + "this CPU (\(cpu.model)) has \(cpu.vectorISA). Unset OPENBLAS_CORETYPE (\(instead)) or set a kernel this CPU runs.\n",
            to: .standardError)
        exit(64)
    }

    /// OpenBLAS's version ("0.3.21").
    public static var version: String {
        let config = openblas_get_config().map { String(cString: $0) } ?? ""
        return config.split(separator: " ").dropFirst().first.map(String.init) ?? "unknown"
    }

    /// Set in the environment of a command that started itself again for a kernel: the core
    /// OpenBLAS had picked.
    static let pickedVariable = "NL_OPENBLAS_PICKED"

    /// Called first thing by the commands that multiply matrices. A user's OPENBLAS_CORETYPE wins,
    /// unless its kernels need instructions the CPU lacks: then the command stops with exit 64.
    /// Without it, when OpenBLAS runs on an older kernel than the CPU allows, starts this command
    /// again with it set to the best one (exec keeps the process, its pid and its place in an MPI
    /// job, which has not started yet). Returns when there is nothing to do or exec failed.
    ///
    /// The same start again sets GOMP_SPINCOUNT=100000 unless the user set it or OMP_WAIT_POLICY:
    /// how long an idle OpenMP thread spins for the next loop before it sleeps, in bfloat16 runs,
    /// whose loops run on OpenMP's team (OpenMP.swift). libgomp's default, 300000 (about 11 ms on a
    /// Zen 4), took a core from the data loader's decoders (the demo's training 8% slower end to
    /// end on 2 cores, every loop on the team); none at all (OMP_WAIT_POLICY=passive) wakes a
    /// sleeping thread for every loop (a bfloat16 step at 2 x 8 x 112 0.190 s against 0.168).
    public static func useTheBestKernel() {
        let environment = ProcessInfo.processInfo.environment
        var set: [String] = []
        if environment["OMP_WAIT_POLICY"] == nil && environment["GOMP_SPINCOUNT"] == nil {
            setenv("GOMP_SPINCOUNT", "100000", 1)
            set.append("GOMP_SPINCOUNT")
        }
        if let forced = environment["OPENBLAS_CORETYPE"], !forced.isEmpty {
            refuseKernelsBeyondTheCPU(forced: forced)
        } else if let wanted = choice(for: .current, openBLASChose: current) {
            setenv("OPENBLAS_CORETYPE", wanted, 1)
            setenv(pickedVariable, current, 1)
            set += ["OPENBLAS_CORETYPE", pickedVariable]
        }
        guard !set.isEmpty else { return }
        restart()
        for name in set { unsetenv(name) }  // exec failed: go on as the libraries loaded
    }

    /// Starts this command again, with its arguments and the environment as it now is (OpenBLAS
    /// reads OPENBLAS_CORETYPE only while it loads). Returns only when exec failed. The signals
    /// that stop a command are blocked across the exec (a mask survives it, handlers do not), so
    /// one that comes meanwhile waits for the new image's handlers rather than kill it.
    public static func restart() {
        var stopping = sigset_t(), previous = sigset_t()
        sigemptyset(&stopping)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGUSR1] { sigaddset(&stopping, s) }
        sigprocmask(SIG_BLOCK, &stopping, &previous)
        let arguments = CommandLine.arguments.map { strdup($0) } + [nil]
        execv(executablePath, arguments)
        execv("/proc/self/exe", arguments)
        sigprocmask(SIG_SETMASK, &previous, nil)
    }

    /// This program's file, which the command starts again: by its own path, so that the process
    /// keeps its name ("nlbench" in ps, pgrep and top, where "/proc/self/exe" would make it "exe").
    public static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/proc/self/exe"
    }

    /// How the kernel came to be: "SkylakeX (chosen for this CPU; OpenBLAS picked Prescott)",
    /// "Haswell (OpenBLAS's choice)", "SkylakeX (OPENBLAS_CORETYPE)".
    public static var provenance: String {
        let environment = ProcessInfo.processInfo.environment
        if let picked = environment[pickedVariable] {
            return "\(current) (chosen for this CPU; OpenBLAS picked \(picked))"
        }
        if let forced = environment["OPENBLAS_CORETYPE"], !forced.isEmpty {
            return current.lowercased() == forced.lowercased()
                ? "\(current) (OPENBLAS_CORETYPE)" : "\(current) (OPENBLAS_CORETYPE=\(forced) was not available)"
        }
        return "\(current) (OpenBLAS's choice)"
    }
}

/// The x86-64 level the project's own Swift code was compiled for (`make build` picks the
/// machine's: scripts/make/target-cpu.sh): "x86-64", "x86-64-v3" (AVX2, FMA) or "x86-64-v4"
/// (AVX-512). A binary refuses to start on a CPU below it (Sources/CBuildTarget).
public enum BuildTarget {
    public static var level: Int { Int(nl_build_level()) }
    public static var name: String { level > 1 ? "x86-64-v\(level)" : "x86-64" }
    /// Whether this CPU runs code built for `level`.
    public static func cpuRuns(level: Int) -> Bool { nl_cpu_runs_level(Int32(level)) != 0 }
}

/// One line on what a command computes on: "AMD EPYC (AVX2+FMA), OpenBLAS 0.3.21 kernel Zen
/// (OpenBLAS's choice), 2 threads, built for x86-64-v3".
public var machineDescription: String {
    let cpu = CPUFeatures.current
    return "\(cpu.model) (\(cpu.vectorISA)), OpenBLAS \(BLASKernel.version) kernel \(BLASKernel.provenance), "
        + "\(Parallel.threadCount) thread\(Parallel.threadCount == 1 ? "" : "s"), built for \(BuildTarget.name)"
}

/// This process's memory, in MiB: resident now (/proc/self/statm) and at its peak (getrusage).
public enum ProcessMemory {
    public static var residentMiB: Double {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
            let pages = statm.split(separator: " ").dropFirst().first.flatMap({ Double($0) })
        else { return 0 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
    }

    /// Resident memory that is the process's own (heap, stacks; not the shared libraries' pages,
    /// which count towards RSS as other processes touch them too): where a leak shows.
    public static var anonymousMiB: Double {
        guard let kB = procFields("/proc/self/status")["RssAnon"]?.split(separator: " ").first.flatMap({ Double($0) })
        else { return 0 }
        return kB / 1024
    }

    /// The peak resident memory since the start or the last `resetPeak` (VmHWM), in bytes.
    public static var peakBytes: Int {
        (procFields("/proc/self/status")["VmHWM"]?.split(separator: " ").first.flatMap { Int($0) } ?? 0) * 1024
    }

    /// Starts `peakBytes` again from the memory now (Linux's clear_refs).
    public static func resetPeak() {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return }
        _ = write(fd, "5", 1)
        close(fd)
    }

    public static var residentBytes: Int { Int(residentMiB * 1_048_576) }

    /// The memory this process could still take: the system's available memory (MemAvailable),
    /// or less where its control group is limited (cgroup v2 memory.max less memory.current).
    public static var availableBytes: Int {
        let system =
            (procFields("/proc/meminfo")["MemAvailable"]?.split(separator: " ").first.flatMap { Int($0) } ?? 0) * 1024
        func number(_ path: String) -> Int? {
            (try? String(contentsOfFile: path, encoding: .utf8)).flatMap {
                Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
        guard let limit = number("/sys/fs/cgroup/memory.max"), let used = number("/sys/fs/cgroup/memory.current") else {
            return system
        }
        return min(system, max(0, limit - used))
    }

    public static var peakMiB: Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}

/// The "key: value" lines of a /proc file (/proc/cpuinfo, /proc/self/status), the first of each
/// key; empty where the file cannot be read (not Linux).
func procFields(_ path: String) -> [String: String] {
    var fields: [String: String] = [:]
    for line in ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n") {
        guard let colon = line.firstIndex(of: ":") else { continue }
        let key = line[..<colon].trimmingCharacters(in: .whitespaces)
        if fields[key] == nil { fields[key] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
    }
    return fields
}
