import Foundation
import NLTensor
import Testing

/// The BLAS kernel for a CPU: never beyond its instructions, never older than it allows.
struct MachineTests {
    static let sse = ["sse", "sse2", "pni", "ssse3", "sse4_1", "sse4_2"]
    static let avx2 = sse + ["avx", "avx2", "fma"]
    static let avx512 = avx2 + ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"]

    func cpu(_ vendor: String, _ flags: [String]) -> CPUFeatures {
        CPUFeatures(vendor: vendor, model: "test", flags: Set(flags))
    }

    @Test func avx2Intel() {
        let haswell = cpu("GenuineIntel", Self.avx2)
        #expect(haswell.vectorISA == "AVX2+FMA" && BLASKernel.best(for: haswell) == "Haswell")
        #expect(BLASKernel.choice(for: haswell, openBLASChose: "Prescott") == "Haswell")
        #expect(BLASKernel.choice(for: haswell, openBLASChose: "Sandybridge") == "Haswell")
        #expect(BLASKernel.choice(for: haswell, openBLASChose: "Haswell") == nil)
    }

    @Test func avx2AMD() {
        let zen3 = cpu("AuthenticAMD", Self.avx2 + ["sse4a"])
        #expect(BLASKernel.best(for: zen3) == "Haswell")
        #expect(
            BLASKernel.choice(for: zen3, openBLASChose: "Zen") == "Haswell",
            "Zen's sgemm with Haswell's vectorised helpers")
        #expect(BLASKernel.choice(for: zen3, openBLASChose: "Haswell") == nil)
        #expect(BLASKernel.choice(for: zen3, openBLASChose: "Bulldozer") == "Haswell")
        #expect(BLASKernel.choice(for: zen3, openBLASChose: "Excavator") == nil, "the same generation, not measured")
        // An AVX-only AMD CPU (Jaguar) that OpenBLAS took for Zen would crash on Zen's and
        // Haswell's FMAs: it gets the kernel it runs.
        #expect(BLASKernel.choice(for: cpu("AuthenticAMD", Self.sse + ["avx"]), openBLASChose: "Zen") == "Sandybridge")
    }

    /// The 2026 Xeon of the issue: Debian's OpenBLAS 0.3.21 did not know it and ran Prescott.
    @Test func avx512() {
        let xeon = cpu("GenuineIntel", Self.avx512)
        #expect(xeon.vectorISA == "AVX-512")
        #expect(BLASKernel.choice(for: xeon, openBLASChose: "Prescott") == "SkylakeX")
        #expect(BLASKernel.choice(for: xeon, openBLASChose: "Haswell") == "SkylakeX")
        #expect(BLASKernel.choice(for: xeon, openBLASChose: "SkylakeX") == nil)
        #expect(
            BLASKernel.choice(for: xeon, openBLASChose: "Cooperlake") == "SkylakeX", "SkylakeX on every AVX-512 CPU")
        #expect(
            BLASKernel.choice(for: xeon, openBLASChose: "GraniteRapids") == nil, "a newer OpenBLAS's own core is kept")
        // AVX-512 F alone (Knights Landing) lacks BW/DQ/VL, which SkylakeX's kernels use.
        #expect(BLASKernel.best(for: cpu("GenuineIntel", Self.avx2 + ["avx512f", "avx512cd"])) == "Haswell")
    }

    /// Sapphire Rapids and Zen 4: OpenBLAS 0.3.21 picks Cooperlake (or, on a Xeon it does not
    /// know, Prescott); the commands run SkylakeX, whose sgemm is as fast.
    @Test func avx512WithBF16() {
        let cooper = cpu("GenuineIntel", Self.avx512 + ["avx512_bf16"])
        #expect(cooper.vectorISA == "AVX-512+BF16")
        #expect(BLASKernel.choice(for: cooper, openBLASChose: "Prescott") == "SkylakeX")
        #expect(BLASKernel.choice(for: cooper, openBLASChose: "Cooperlake") == "SkylakeX")
        #expect(BLASKernel.choice(for: cooper, openBLASChose: "SkylakeX") == nil)
        #expect(
            BLASKernel.choice(for: cpu("AuthenticAMD", Self.avx512 + ["avx512_bf16"]), openBLASChose: "Zen")
                == "SkylakeX")
    }

    /// Which kernels are 16 floats wide (the stem's 8-float direct loops give way to them but on a
    /// CPU that halves AVX-512: halvedAVX512).
    @Test func avx512Kernels() {
        let (xeon, zen3) = (cpu("GenuineIntel", Self.avx512), cpu("AuthenticAMD", Self.avx2))
        #expect(BLASKernel.isAVX512("SkylakeX", on: xeon) && BLASKernel.isAVX512("Cooperlake", on: xeon))
        #expect(!BLASKernel.isAVX512("Prescott", on: xeon) && !BLASKernel.isAVX512("Haswell", on: xeon))
        #expect(!BLASKernel.isAVX512("Zen", on: zen3))
        #expect(
            BLASKernel.isAVX512("GraniteRapids", on: xeon) && !BLASKernel.isAVX512("SomeNewCore", on: zen3),
            "a newer OpenBLAS's core: what the CPU has")
    }

    /// The CPUs whose AVX-512 runs in 256-bit halves, where the stem's 8-float direct loops keep
    /// their place beside OpenBLAS's 16-float kernels: AMD's Zen 4 alone among those known.
    @Test func halvedAVX512() {
        func amd(_ family: Int, _ flags: [String]) -> CPUFeatures {
            CPUFeatures(vendor: "AuthenticAMD", family: family, model: "AMD EPYC", flags: Set(flags))
        }
        #expect(amd(25, Self.avx512 + ["avx512_bf16"]).halvesAVX512, "Zen 4")
        #expect(!amd(25, Self.avx2).halvesAVX512, "Zen 3: the same family, no AVX-512")
        #expect(!amd(26, Self.avx512 + ["avx512_bf16"]).halvesAVX512, "Zen 5: 512 bits at once")
        let xeon = CPUFeatures(vendor: "GenuineIntel", family: 6, model: "Xeon", flags: Set(Self.avx512))
        #expect(!xeon.halvesAVX512)
    }

    /// Kernels a user forces that the CPU cannot run are named with what they need; those it runs,
    /// and cores older than AVX or newer than the table, are not refused.
    @Test func kernelsBeyondTheCPU() {
        let (zen3, xeon, sandy) = (
            cpu("AuthenticAMD", Self.avx2), cpu("GenuineIntel", Self.avx512), cpu("GenuineIntel", Self.sse + ["avx"])
        )
        #expect(BLASKernel.missing(for: "SkylakeX", on: zen3) == "AVX-512 (F, BW, DQ, VL, CD)")
        #expect(BLASKernel.missing(for: "Cooperlake", on: zen3) == "AVX-512 (F, BW, DQ, VL, CD)")
        #expect(BLASKernel.missing(for: "Cooperlake", on: xeon) == nil, "its sgemm needs AVX-512, not BF16")
        #expect(
            BLASKernel.missing(for: "Haswell", on: sandy) == "AVX2 and FMA"
                && BLASKernel.missing(for: "zen", on: sandy) == "AVX2 and FMA")
        #expect(BLASKernel.missing(for: "Piledriver", on: sandy) == "FMA")
        #expect(BLASKernel.missing(for: "Sandybridge", on: cpu("GenuineIntel", Self.sse)) == "AVX")
        for runs in ["Haswell", "Zen", "Sandybridge", "Prescott", "Nehalem"] {
            #expect(BLASKernel.missing(for: runs, on: zen3) == nil, "\(runs)")
        }
        #expect(
            BLASKernel.missing(for: "SkylakeX", on: xeon) == nil
                && BLASKernel.missing(for: "Prescott", on: cpu("", [])) == nil)
        #expect(BLASKernel.missing(for: "GraniteRapids", on: zen3) == nil, "a newer OpenBLAS's core: its own check")
    }

    /// A CPU the table does not know keeps what OpenBLAS chose, or gets what its features allow;
    /// a core name newer than the table is OpenBLAS's own and is kept.
    @Test func unrecognised() {
        let old = cpu("GenuineIntel", ["sse", "sse2"])
        #expect(
            old.vectorISA == "SSE2" && BLASKernel.best(for: old) == nil
                && BLASKernel.choice(for: old, openBLASChose: "Prescott") == nil)
        let zhaoxin = cpu("CentaurHauls", Self.avx2)
        #expect(BLASKernel.choice(for: zhaoxin, openBLASChose: "Nano") == "Haswell")
        #expect(BLASKernel.choice(for: cpu("GenuineIntel", Self.avx512), openBLASChose: "GraniteRapids") == nil)
        #expect(BLASKernel.best(for: cpu("", [])) == nil)
    }

    /// The build's level runs here (or the tests would not have started), and the CPU check agrees
    /// with the kernel's feature flags.
    @Test func buildTarget() {
        #expect(BuildTarget.cpuRuns(level: BuildTarget.level) && BuildTarget.cpuRuns(level: 1))
        let here = CPUFeatures.current
        #expect(BuildTarget.cpuRuns(level: 3) == (here.avx2 && here.flags.contains("bmi2")))
        #expect(BuildTarget.cpuRuns(level: 4) == (here.avx512 && here.avx2))
    }

    /// A command starts itself again by its file's path, so it keeps its name in ps and pgrep.
    @Test func theFileACommandStartsAgain() {
        let path = BLASKernel.executablePath
        #expect(
            path.hasPrefix("/") && !path.hasPrefix("/proc") && FileManager.default.isExecutableFile(atPath: path),
            "\(path)")
    }

    @Test func thisMachine() {
        let here = CPUFeatures.current
        #expect(!here.flags.isEmpty && here.model != "unknown CPU" && here.family > 0)
        #expect(machineDescription.contains(here.model) && machineDescription.contains("OpenBLAS"))
    }
}
