import Foundation
import NLModels
import NLData
import NLLayers
import NLTensor
import NLVideo

/// The numerical self-check: whether this machine computes right in the configuration the
/// commands chose (OpenBLAS's kernel, the thread count). A newer kernel is not a right kernel,
/// and a test suite that passed on one machine proves that machine only, so before the first
/// training or evaluation on a (CPU, OpenBLAS version and kernel, threads) the commands run
/// NL I3D R50 forward and backward in every non-local mode and with context blocks, on the
/// training step's GEMM shapes and their splits over threads, and hold:
///
/// - every matrix product OpenBLAS makes against float64 on the same operands (GEMMCheck: within
///   1e-4 of the size of its terms; float32 rounding stays below 2e-6);
/// - the logits against the same network's on one thread (within 1e-4 of the largest), for the
///   project's own threaded loops.
///
/// The verdict is cached per configuration; `nlbench verify` runs it on demand.
public enum SelfCheck {
    /// Logits on the threads against one thread: float32 orders of summation differ by 1e-6.
    public static let logitTolerance = 1e-4
    /// Changes when the check does, so that verdicts of an older check are not trusted.
    static let version = 1

    /// One network the check runs, on a clip of (N, T, H, W).
    struct Case {
        let name: String
        let spec: ModelSpec
        let clip: [Int]
    }

    /// The paper's model (embedded Gaussian) at nlbench step's default shape: every layer's
    /// product, large enough to be split over threads along M, N and K. Then the other modes and
    /// GCNet's context blocks at half the width on a smaller clip, for their own products (their
    /// initialisation would otherwise take most of the check's time).
    static var cases: [Case] {
        NonLocalBlock.Mode.allCases.map { mode in
            var spec = ModelSpec.named("nl_i3d_r50")!
            spec.nonLocalMode = mode
            spec.nonLocalUseScale = mode == .embeddedGaussian
            if mode == .embeddedGaussian { return Case(name: "nl_i3d_r50", spec: spec, clip: [2, 8, 112, 112]) }
            spec.baseChannels = 32
            return Case(name: "nl_i3d_r50 \(mode.rawValue) at half width", spec: spec, clip: [1, 8, 64, 64])
        } + [
            Case(
                name: "gc_i3d_r50 at half width",
                spec: {
                    var s = ModelSpec.named("gc_i3d_r50")!; s.baseChannels = 32; return s
                }(), clip: [1, 8, 64, 64])
        ]
    }

    /// What one run of the check found.
    public struct Result: Sendable {
        public var configuration: Configuration
        public var products = GEMMCheck.Record()
        /// The largest difference of the logits from one thread's, relative to the largest logit.
        public var logitError = 0.0
        public var seconds = 0.0

        public init(configuration: Configuration) { self.configuration = configuration }

        public var passed: Bool { products.passed && logitError <= SelfCheck.logitTolerance }

        /// "passed: 2657 products of 5 networks at most 6.6e-07 from float64 (allowed 1e-05), logits
        /// 8.4e-07 from one thread's (allowed 1e-04); 4.3 s", or "FAILED: 2249 of 2657 products of
        /// 5 networks off float64 by up to 1.0e-02 in TN 200 x 1024 x 1 (allowed 1e-05), ...".
        public var summary: String {
            let worst = products.worst.map { String(format: "%.1e", $0.error) + " in \($0.shape)" } ?? "0"
            let networks = "products of \(SelfCheck.cases.count) networks"
            var text =
                products.passed
                ? "passed: \(products.calls) \(networks) at most \(worst) from float64"
                : "FAILED: \(products.wrongCalls) of \(products.calls) \(networks) off float64 by up to \(worst)"
            text += " (allowed " + String(format: "%.0e", GEMMCheck.tolerance) + ")"
            if configuration.threads > 1 {
                text += String(
                    format: ", logits %.1e from one thread's (allowed %.0e)", logitError, SelfCheck.logitTolerance)
            }
            return text + String(format: "; %.1f s", seconds)
        }
    }

    /// Runs the check on this process's kernel and threads.
    public static func run() -> Result {
        let started = Date()
        var result = Result(configuration: .current)
        for (index, check) in cases.enumerated() {
            let model = Recognizer(spec: check.spec, seed: UInt64(index + 1))
            var generator = SeededGenerator(seed: 1000 + UInt64(index))
            let clip = Tensor(
                shape: check.clip + [3],
                values: (0..<(check.clip.reduce(3, *))).map { _ in generator.uniform() * 2 - 1 })
            let labels = (0..<check.clip[0]).map { ($0 * 97 + index) % check.spec.numClasses }
            let (_, record) = GEMMCheck.measure {
                let (_, dLogits) = SoftmaxCrossEntropy.lossAndGradient(
                    logits: model.forward(clip, training: true), labels: labels)
                model.zeroGradients()
                _ = model.backward(dLogits)
            }
            result.products.merge(record)
            let threads = Parallel.threadCount
            if threads > 1 {
                let logits = model.forward(clip, training: false).copy()
                Parallel.setThreadCount(1)
                let serial = model.forward(clip, training: false)
                Parallel.setThreadCount(threads)
                var largest: Float = 0, difference: Float = 0
                for i in 0..<logits.count {
                    largest = max(largest, abs(serial[i]))
                    difference = max(difference, abs(logits[i] - serial[i]))
                }
                let error = difference.isFinite ? Double(difference / max(largest, .leastNormalMagnitude)) : .infinity
                result.logitError = max(result.logitError, error)
            }
        }
        Tensor.releasePooledBuffers()
        result.seconds = Date().timeIntervalSince(started)
        return result
    }

    /// What the commands compute on: OpenBLAS's kernel and the threads.
    public struct Configuration: Sendable, Equatable, CustomStringConvertible {
        public var kernel: String
        public var threads: Int

        public init(kernel: String, threads: Int) { (self.kernel, self.threads) = (kernel, threads) }
        public static var current: Configuration {
            Configuration(kernel: BLASKernel.current, threads: Parallel.threadCount)
        }
        public var description: String { "\(kernel) with \(threads) thread\(threads == 1 ? "" : "s")" }
    }
}
