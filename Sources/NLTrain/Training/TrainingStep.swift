import Dispatch
import NLModels
import NLData
import NLDistributed
import NLLayers
import NLTensor
import NLVideo

/// One training iteration, as nltrain runs it and as the benchmarks measure it: zero the
/// gradients, draw dropout's masks for this iteration, forward, loss, backward, average the
/// gradients over the processes, clip them, and take an SGD step at the scheduled rate.
public final class TrainingStep {
    public let model: Recognizer
    public let sgd: SGD
    public let schedule: LearningRateSchedule
    let train: TrainSection
    let parallel: DataParallel
    private var bucket: [Float] = []

    /// What one step saw: the loss, the clips the model got right, the learning rate used, and
    /// the seconds spent averaging the gradients over the processes (0 alone).
    public struct Outcome: Sendable {
        public let loss: Float
        public let correct: Int
        public let lr: Double
        public let allreduceSeconds: Double
    }

    /// A step for `model` with `sgd` (SGD(model:_:) for a new run) under [train]'s clipping and
    /// warmup-then-decay schedule over epochs of `iterationsPerEpoch`.
    public convenience init(model: Recognizer, sgd: SGD, train: TrainSection, iterationsPerEpoch: Int) {
        self.init(
            model: model, sgd: sgd, train: train, iterationsPerEpoch: iterationsPerEpoch, parallel: DataParallel())
    }

    init(model: Recognizer, sgd: SGD, train: TrainSection, iterationsPerEpoch: Int, parallel: DataParallel) {
        (self.model, self.sgd, self.train, self.parallel) = (model, sgd, train, parallel)
        schedule = LearningRateSchedule(train, iterationsPerEpoch: iterationsPerEpoch)
    }

    /// Trains on `clips` (N, T, H, W, 3) with `labels` as iteration `globalIteration` of the run.
    /// `timing` hears each layer's forward and backward seconds. Throws when the loss is not finite.
    public func run(
        _ clips: Tensor, labels: [Int], globalIteration: Int, timing: ((String, Double) -> Void)? = nil,
        backwardTiming: ((String, Double) -> Void)? = nil
    ) throws -> Outcome {
        let lr = schedule.rate(at: globalIteration)
        model.zeroGradients()
        model.head.dropout.generator = dropoutGenerator(at: globalIteration)
        let logits = model.forward(clips, training: true, timing: timing)
        let (loss, gradient) = SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: labels)
        guard loss.isFinite else { throw Divergence(iteration: globalIteration + 1, what: "the loss became \(loss)") }
        let correct = labels.indices.filter { argmax(logits, row: $0) == labels[$0] }.count
        _ = model.backward(gradient, timing: backwardTiming)
        let reduceStart = DispatchTime.now().uptimeNanoseconds
        parallel.averageGradients(of: sgd.parameters, bucket: &bucket)
        let allreduce = parallel.isDistributed ? Double(DispatchTime.now().uptimeNanoseconds - reduceStart) / 1e9 : 0
        if let name = sgd.step(
            lr: lr, gradientScale: train.gradClip > 0 ? sgd.clipCoefficient(maxNorm: train.gradClip) : 1)
        {
            throw Divergence(
                iteration: globalIteration + 1, what: "the weights or momentum of \(name) are no longer finite")
        }
        if let (name, value) = brokenStatistic() {
            throw Divergence(
                iteration: globalIteration + 1,
                what: "BatchNorm's \(name) became \(value) (the loss, on batch statistics, was \(loss))")
        }
        return Outcome(loss: loss, correct: correct, lr: lr, allreduceSeconds: allreduce)
    }

    /// BatchNorm's running statistics, which training updates outside the optimizer.
    private lazy var runningStatistics: [(name: String, values: Tensor)] = model.state.compactMap { name, entry in
        if case .buffer(let values) = entry { (name, values) } else { nil }
    }

    /// The first running statistic that is not finite (or a variance below zero), and its value.
    private func brokenStatistic() -> (String, Float)? {
        for (name, values) in runningStatistics {
            if let bad = values.buffer.first(where: { !$0.isFinite || (name.hasSuffix("running_var") && $0 < 0) }) {
                return (name, bad)
            }
        }
        return nil
    }

    /// Dropout's draws for one iteration of one rank, from (seed, iteration, rank): nothing to
    /// save in checkpoints, and no two ranks draw the same masks.
    func dropoutGenerator(at globalIteration: Int) -> SeededGenerator {
        SeededGenerator(seed: UInt64(train.seed), stream: (UInt64(globalIteration) << 16 | UInt64(parallel.rank)) + 1)
    }
}

/// The index of the largest logit of row `row`.
func argmax(_ logits: Tensor, row: Int) -> Int {
    let c = logits.channels
    var best = 0
    for j in 1..<c where logits[row * c + j] > logits[row * c + best] { best = j }
    return best
}

/// A run that diverged: a loss, weight, momentum or running statistic no longer finite. Thrown
/// before anything is written, so the last checkpoint holds the last good state; the Trainer adds
/// which checkpoint that is (exit 70).
public struct Divergence: Error, CustomStringConvertible {
    public let iteration: Int
    public let what: String
    public var description: String { "\(what) at iteration \(iteration)" }
}
