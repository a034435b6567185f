import Foundation
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLLayers
import NLModels
import NLTensor
import NLVideo

/// Where the self-check falls back to, and how its verdicts are kept. Running it, catching a
/// wrong kernel and falling back end to end: CLITests/SelfCheckCLITests.
struct SelfCheckTests {
    typealias Configuration = SelfCheck.Configuration

    static let sse = ["sse", "sse2", "sse3", "ssse3", "sse4_1", "sse4_2"]
    static let avx2 = sse + ["avx", "avx2", "fma", "bmi2"]
    static let avx512 = avx2 + ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"]

    /// An older kernel on the same threads first (as fast, or nearly), one thread last.
    @Test func fallbacksGoToOlderKernelsThenOneThread() {
        let zen4 = CPUFeatures(vendor: "AuthenticAMD", model: "AMD EPYC", flags: Set(Self.avx512 + ["avx512_bf16"]))
        #expect(
            SelfCheck.fallbacks(after: Configuration(kernel: "SkylakeX", threads: 2), on: zen4)
                == [
                    Configuration(kernel: "Haswell", threads: 2), Configuration(kernel: "Prescott", threads: 2),
                    Configuration(kernel: "Prescott", threads: 1),
                ])
        #expect(
            SelfCheck.fallbacks(after: Configuration(kernel: "Cooperlake", threads: 1), on: zen4)
                == [Configuration(kernel: "Haswell", threads: 1), Configuration(kernel: "Prescott", threads: 1)])
        let sandy = CPUFeatures(vendor: "GenuineIntel", model: "Xeon E5", flags: Set(Self.sse + ["avx"]))
        #expect(
            SelfCheck.fallbacks(after: Configuration(kernel: "Sandybridge", threads: 4), on: sandy)
                == [Configuration(kernel: "Prescott", threads: 4), Configuration(kernel: "Prescott", threads: 1)],
            "no Haswell without AVX2")
        #expect(
            SelfCheck.fallbacks(after: Configuration(kernel: "Prescott", threads: 2), on: sandy) == [
                Configuration(kernel: "Prescott", threads: 1)
            ])
        #expect(SelfCheck.fallbacks(after: Configuration(kernel: "Prescott", threads: 1), on: sandy).isEmpty)
        // A newer OpenBLAS's own core, unknown to the table, falls back like the newest.
        #expect(
            SelfCheck.fallbacks(after: Configuration(kernel: "GraniteRapids", threads: 2), on: zen4).first
                == Configuration(kernel: "Haswell", threads: 2))
    }

    /// Verdicts are kept per configuration, the newest replacing the last; a file written by hand
    /// or damaged keeps its good lines.
    @Test func verdictsAreKeptPerConfiguration() throws {
        let folder = scratchDirectory("verdicts"), path = "\(folder)/nl-i3d/self-check.txt"
        var failed = SelfCheck.Result(configuration: Configuration(kernel: "SkylakeX", threads: 2))
        failed.products.wrongCalls = 3
        #expect(SelfCheck.keep(failed, in: path) == nil)
        let passed = SelfCheck.Result(configuration: Configuration(kernel: "Haswell", threads: 2))
        #expect(SelfCheck.keep(passed, in: path) == nil)
        var kept = SelfCheck.verdicts(in: path)
        #expect(kept.count == 2)
        #expect(
            kept[SelfCheck.key(failed.configuration)]?.passed == false
                && kept[SelfCheck.key(passed.configuration)]?.passed == true)
        #expect(kept[SelfCheck.key(failed.configuration)]?.summary.hasPrefix("FAILED: 3 of 0 products") == true)
        // Checked again, and passing now.
        #expect(SelfCheck.keep(SelfCheck.Result(configuration: failed.configuration), in: path) == nil)
        kept = SelfCheck.verdicts(in: path)
        #expect(kept.count == 2 && kept[SelfCheck.key(failed.configuration)]?.passed == true)
        // The key names what a verdict holds for.
        let key = SelfCheck.key(Configuration(kernel: "SkylakeX", threads: 2))
        #expect(
            key.contains(CPUFeatures.current.model) && key.contains("OpenBLAS \(BLASKernel.version) SkylakeX")
                && key.contains("2 threads"))
        // A damaged line (no tabs, a torn write) is passed over.
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try (text + "garbage line\n\(key)\tmaybe\tyesterday\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(SelfCheck.verdicts(in: path).count == 2)
        #expect(SelfCheck.verdicts(in: "\(folder)/missing.txt").isEmpty)
    }
}
