import Foundation
import NLModels

/// The training-step benchmark, in the form of ../shared/bench/pytorch_step.py: a random clip and
/// labels, forward, loss, backward, SGD (momentum 0.9, weight decay 1e-4); one warm-up step, then
/// `steps` timed ones, and their median. Under mpirun each rank steps and the gradients are
/// averaged over the ranks as in training, which is timed on its own.
public struct StepBenchmark {
    public var spec: ModelSpec
    public var batch = 2, frames = 8, size = 112
    public var steps = 3

    public init(spec: ModelSpec) { self.spec = spec }

    public struct Result: Sendable {
        /// FLOPs of one step as PyTorch's FlopCounterMode counts them (2 a multiply-add).
        public let flops: Double
        public let medianSeconds: Double
        /// Under mpirun: the median time of averaging the gradients over the ranks (within the step).
        public let allreduceSeconds: Double?
        /// Whether this process reports (rank 0, or the only process).
        public let reports: Bool
        /// Per layer of the sequence (in forward order): the median forward and backward seconds.
        public let layers: [(name: String, forward: Double, backward: Double)]
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

    public func run() -> Result {
        let model = Recognizer(spec: spec)
        let sgd = SGD(parameters: model.parameters.filter { $0.parameter.requiresGradient }, momentum: 0.9, nesterov: false, weightDecay: 1e-4)
        var generator = SeededGenerator(seed: 0)
        let clip = Tensor(zeros: [batch, frames, size, size, 3])
        clip.fillNormal(std: 1, using: &generator)
        let labels = (0..<batch).map { _ in generator.below(spec.numClasses) }
        var forwardTimes: [String: [Double]] = [:], backwardTimes: [String: [Double]] = [:], order: [String] = []
        var stepTimes: [Double] = [], allreduceTimes: [Double] = [], bucket: [Float] = []
        let parallel = DataParallel()
        for step in 0...steps {
            let timed = step > 0
            let start = DispatchTime.now().uptimeNanoseconds
            model.zeroGradients()
            let logits = model.forward(clip, training: true, timing: timed ? { name, seconds in
                if forwardTimes[name] == nil { order.append(name) }
                forwardTimes[name, default: []].append(seconds)
            } : nil)
            let (_, gradient) = SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: labels)
            _ = model.backward(gradient, timing: timed ? { backwardTimes[$0, default: []].append($1) } : nil)
            if parallel.isDistributed {
                _ = parallel.maximum(0)  // every rank here: the time below is the allreduce's, not a wait for the slowest
                let reduceStart = DispatchTime.now().uptimeNanoseconds
                parallel.averageGradients(of: sgd.parameters, bucket: &bucket)
                if timed { allreduceTimes.append(Double(DispatchTime.now().uptimeNanoseconds - reduceStart) / 1e9) }
            }
            sgd.step(lr: 0.01)
            if timed { stepTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        return Result(flops: Self.trainStepFLOPs(model, clipShape: clip.shape), medianSeconds: median(stepTimes),
                      allreduceSeconds: allreduceTimes.isEmpty ? nil : median(allreduceTimes), reports: parallel.isRoot,
                      layers: order.map { ($0, median(forwardTimes[$0]!), backwardTimes[$0].map(median) ?? 0) })
    }
}
