import Foundation
import NLData
import NLDistributed
import NLModels
import NLTrain
import NLLayers
import NLTensor
import NLVideo

/// The training-step benchmark: nltrain's own step (TrainingStep: SGD with momentum, weight decay,
/// clipping and the scheduled rate, as [train]'s defaults, i3d_nl's, set them) on a random clip
/// and labels, in the form of scripts/bench/pytorch_step.py; one warm-up step, then `steps` timed
/// ones, and their median. Under mpirun each rank steps and the gradients are averaged over the
/// ranks as in training.
public struct StepBenchmark {
    public var spec: ModelSpec
    public var train = TrainSection()
    public var batch = 2, frames = 8, size = 112
    public var steps = 3

    public init(spec: ModelSpec) { self.spec = spec }

    public struct Result: Sendable {
        /// FLOPs of one step as PyTorch's FlopCounterMode counts them (2 a multiply-add).
        public let flops: Double
        public let medianSeconds: Double
        /// Under mpirun: the median time of averaging the gradients over the ranks (within the
        /// step; it includes waiting for the slowest rank).
        public let allreduceSeconds: Double?
        /// Whether this process reports (rank 0, or the only process).
        public let reports: Bool
        /// Per layer of the sequence (in forward order): the median forward and backward seconds.
        public let layers: [(name: String, forward: Double, backward: Double)]
        /// OpenBLAS's sgemm in one step (the timed steps' mean): FLOPs and the seconds threads
        /// spent in it, in all and by shape.
        public let sgemm: GEMM.Meter.Record
        public var gflopsPerSecond: Double { flops / medianSeconds / 1e9 }
    }

    /// Forward FLOPs and, for each multiply in backward, the gradient of each operand that needs
    /// one: 3x the forward's multiply-adds, less the first convolution's input gradient (the
    /// clip needs none).
    public static func trainStepFLOPs(_ model: Recognizer, clipShape: [Int]) -> Double {
        let rows = model.summary(clipShape: clipShape)
        let total = rows.reduce(0) { $0 + $1.multiplyAdds }
        let stem = rows.first { $0.name == "backbone.conv1" }!.multiplyAdds
        return 2 * Double(3 * total - stem)
    }

    /// The machine's float32 matrix-product rate, FLOP/s: a 2048 x 2048 x 2048 product split
    /// over the project's threads as the step's are, the median of three after one untimed. What
    /// a step's GFLOP/s is held to (nlbench step --layers).
    public static func sgemmRate() -> Double {
        let n = 2048
        var generator = SeededGenerator(seed: 1)
        let (a, b, c) = (Tensor(zeros: [n, n]), Tensor(zeros: [n, n]), Tensor(zeros: [n, n]))
        a.fillNormal(std: 1, using: &generator)
        b.fillNormal(std: 1, using: &generator)
        var times: [Double] = []
        for pass in 0..<4 {
            let start = Date()
            GEMM.multiply(m: n, n: n, k: n, a: a.data, lda: n, b: b.data, ldb: n, c: c.data, ldc: n)
            if pass > 0 { times.append(Date().timeIntervalSince(start)) }
        }
        return 2 * Double(n * n * n) / times.sorted()[1]
    }

    public func run() throws -> Result {
        if let problem = train.precision.unavailable { throw UsageError("bf16: \(problem)") }
        let model = Recognizer(spec: spec)
        if let problem = model.clipProblem([batch, frames, size, size], training: true) { throw UsageError(problem) }
        ConvolutionChoices.apply(
            to: model, clipShape: [batch, frames, size, size], precision: train.precision, training: true,
            log: { Files.emit("nlbench step: \($0)\n", to: .standardError) })
        let step = TrainingStep(
            model: model, optimizer: Optimizer(model: model, train), train: train, iterationsPerEpoch: 1000)
        var generator = SeededGenerator(seed: 0)
        let clip = Tensor(zeros: [batch, frames, size, size, 3])
        clip.fillNormal(std: 1, using: &generator)
        let labels = (0..<batch).map { _ in generator.below(spec.numClasses) }
        var forwardTimes: [String: [Double]] = [:], backwardTimes: [String: [Double]] = [:], order: [String] = []
        var stepTimes: [Double] = [], allreduceTimes: [Double] = []
        for iteration in 0...steps {
            let timed = iteration > 0
            if iteration == 1 { GEMM.Meter.start() }
            let start = DispatchTime.now().uptimeNanoseconds
            let outcome = try step.run(
                clip, labels: labels, globalIteration: iteration,
                timing: timed
                    ? { name, seconds in
                        if forwardTimes[name] == nil { order.append(name) }
                        forwardTimes[name, default: []].append(seconds)
                    } : nil, backwardTiming: timed ? { backwardTimes[$0, default: []].append($1) } : nil)
            guard timed else { continue }
            stepTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            allreduceTimes.append(outcome.allreduceSeconds)
        }
        let sgemm = GEMM.Meter.stop()
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let job = Communicator.world
        return Result(
            flops: Self.trainStepFLOPs(model, clipShape: clip.shape), medianSeconds: median(stepTimes),
            allreduceSeconds: (job?.size ?? 1) > 1 ? median(allreduceTimes) : nil, reports: job?.isRoot ?? true,
            layers: order.map { ($0, median(forwardTimes[$0]!), backwardTimes[$0].map(median) ?? 0) },
            sgemm: sgemm.perStep(of: steps))
    }
}
