import Foundation
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLLayers
import NLTensor
import NLVideo

/// The numerical self-check as the commands run it, on the kernel they choose: it passes here,
/// catches a wrong sgemm (NL_SIMULATE_WRONG_SGEMM makes one), and nltrain and nleval then fall
/// back to a configuration that computes right, or stop (70) when none does. Each test keeps its
/// verdicts in its own XDG_CACHE_HOME.
struct SelfCheckCLITests {
    static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        ["XDG_CACHE_HOME": scratchDirectory("cache")].merging(extra) { $1 }
    }

    static func verdictLines(_ environment: [String: String]) throws -> [String] {
        try String(contentsOfFile: environment["XDG_CACHE_HOME"]! + "/nl-i3d/self-check.txt", encoding: .utf8)
            .split(separator: "\n").filter { !$0.hasPrefix("#") }.map(String.init)
    }

    /// The commands' kernel on 2 threads and on 1, and every kernel this CPU runs on 2 threads
    /// (Cooperlake among them on AVX512_BF16 CPUs, where OpenBLAS 0.3.21 picks it).
    @Test(arguments: ["", "Haswell", "SkylakeX", "Cooperlake"])
    func passesOnThisMachine(kernel: String) throws {
        let cpu = CPUFeatures.current
        guard kernel.isEmpty || BLASKernel.missing(for: kernel, on: cpu) == nil else { return }
        for threads in kernel.isEmpty ? ["2", "1"] : ["2"] {
            let environment = Self.environment(["NL_THREADS": threads, "OPENBLAS_CORETYPE": kernel])
            let r = try run("nlbench", ["verify"], environment: environment)
            #expect(
                r.status == 0 && r.stdout.contains("with \(threads) thread") && r.stdout.contains(": passed: "),
                "\(r.stdout)\(r.stderr)")
            if kernel.isEmpty { #expect(r.stdout.contains("self-check of \(BLASKernel.best(for: cpu) ?? "")")) }
            print(
                "self-check \(kernel.isEmpty ? "commands' kernel" : kernel), \(threads) threads: \(r.stdout.split(separator: "\n").last ?? "")"
            )
            #expect(try Self.verdictLines(environment).count == 1)
        }
    }

    @Test func catchesAWrongKernel() throws {
        let r = try run("nlbench", ["verify"], environment: Self.environment(["NL_SIMULATE_WRONG_SGEMM": "*:1"]))
        #expect(
            r.status == 70 && r.stdout.contains(": FAILED: ") && r.stdout.contains("off float64 by up to 1.0e-02 in "),
            "\(r.stdout)\(r.stderr)")
    }

    /// nltrain on a kernel that is wrong with 2 threads: the check fails, the run goes on on the
    /// next configuration that passes and says so in train.log; the next run reads the verdicts.
    @Test func nltrainFallsBackAndSaysSo() throws {
        let chosen = BLASKernel.best(for: .current) ?? BLASKernel.current
        let environment = Self.environment(["NL_SIMULATE_WRONG_SGEMM": "\(chosen.lowercased()):2", "NL_THREADS": "2"])
        let work = scratchDirectory("selfcheck-train")
        let r = try run(
            "nltrain", ["--config", tinyRunConfig(workDirectory: work, epochs: 1)], environment: environment)
        #expect(r.status == 0, "\(r.stderr)")
        let next = SelfCheck.fallbacks(after: .init(kernel: chosen, threads: 2), on: .current).first!
        let log = try String(contentsOfFile: "\(work)/train.log", encoding: .utf8)
        #expect(
            log.contains("self-check: \(chosen) with 2 threads: FAILED: ")
                && log.contains("; fell back to \(next): passed: "), "\(log)")
        #expect(log.contains("kernel \(next.kernel)"), "the run computes on the fallback")
        #expect(try Self.verdictLines(environment).count == 2)

        let again = try run(
            "nltrain", ["--config", tinyRunConfig(workDirectory: scratchDirectory("selfcheck-again"), epochs: 1)],
            environment: environment)
        #expect(
            again.status == 0 && again.stdout.contains("\(chosen) with 2 threads: FAILED when checked on ")
                && again.stdout.contains("fell back to \(next): passed when checked on "), "\(again.stdout)")
    }

    /// When every configuration computes wrong, nleval stops before evaluating (70), naming each.
    @Test func nothingRightStopsTheCommand() throws {
        let work = scratchDirectory("selfcheck-eval")
        #expect(try run("nltrain", ["--config", tinyRunConfig(workDirectory: work, epochs: 1)]).status == 0)
        let r = try run(
            "nleval", ["--ckpt", "\(work)/best.safetensors"],
            environment: Self.environment(["NL_SIMULATE_WRONG_SGEMM": "*:1"]))
        #expect(
            r.status == 70 && r.stderr.contains("no fallback computes right either")
                && r.stderr.contains("Prescott with 1 thread: FAILED"), "\(r.stderr)")
        #expect(!r.stdout.contains("top-1"))
    }
}
