import Dispatch
import NLModels
import NLData
import NLDistributed
import NLLayers
import NLTensor
import NLVideo

/// One training iteration, as nltrain runs it and as the benchmarks measure it: zero the
/// gradients; for each micro-batch (train.accumulate of them, batch_size clips each) draw
/// dropout's masks, forward, loss and backward, the gradients summing; average them over the
/// processes, clip them, and take an SGD step at the scheduled rate. With accumulation each
/// micro-batch's loss gradient is divided by their number, so the step sees the mean over the
/// iteration's clips, as one batch of them; BatchNorm alone sees micro-batches.
public final class TrainingStep {
    public let model: Recognizer
    public let optimizer: Optimizer
    public let schedule: LearningRateSchedule
    let train: TrainSection
    let parallel: DataParallel
    /// Each class's weight in the loss (train.class_weights for the training set; empty: all 1).
    public var classWeights: [Float] = []
    private var bucket: [Float] = []

    /// What one step saw: the loss, the clips the model got right, the learning rate used, and
    /// the seconds spent averaging the gradients over the processes (0 alone).
    public struct Outcome: Sendable {
        public let loss: Float
        public let correct: Int
        public let lr: Double
        public let allreduceSeconds: Double
    }

    /// A step for `model` with `optimizer` (Optimizer(model:_:) for a new run) under [train]'s clipping,
    /// accumulation and warmup-then-decay schedule over epochs of `iterationsPerEpoch`.
    public convenience init(model: Recognizer, optimizer: Optimizer, train: TrainSection, iterationsPerEpoch: Int) {
        self.init(
            model: model, optimizer: optimizer, train: train, iterationsPerEpoch: iterationsPerEpoch,
            parallel: DataParallel())
    }

    init(model: Recognizer, optimizer: Optimizer, train: TrainSection, iterationsPerEpoch: Int, parallel: DataParallel)
    {
        (self.model, self.optimizer, self.train, self.parallel) = (model, optimizer, train, parallel)
        schedule = LearningRateSchedule(train, iterationsPerEpoch: iterationsPerEpoch)
    }

    /// The micro-batches of an iteration's `clips` and `labels`: train.accumulate views of equal
    /// size (one, the whole, without accumulation).
    func microBatches(_ clips: Tensor, labels: [Int]) -> [(clips: Tensor, labels: [Int])] {
        let parts = train.accumulate, size = labels.count / parts
        precondition(size * parts == labels.count, "\(labels.count) clips are not \(parts) micro-batches")
        guard parts > 1 else { return [(clips, labels)] }
        return (0..<parts).map {
            (clips.slice($0 * size..<($0 + 1) * size), Array(labels[$0 * size..<($0 + 1) * size]))
        }
    }

    /// Trains on `clips` (N, T, H, W, 3) with `labels` as iteration `globalIteration` of the run.
    /// `timing` hears each layer's forward and backward seconds. Throws when the loss is not finite.
    public func run(
        _ clips: Tensor, labels: [Int], globalIteration: Int, timing: ((String, Double) -> Void)? = nil,
        backwardTiming: ((String, Double) -> Void)? = nil
    ) throws -> Outcome {
        let lr = schedule.rate(at: globalIteration)
        model.zeroGradients()
        var losses: Float = 0, correct = 0
        let parts = microBatches(clips, labels: labels)
        for (index, part) in parts.enumerated() {
            model.head.dropout.generator = randomness(at: globalIteration, microBatch: index)
            var clips = part.clips
            var targets = SoftmaxCrossEntropy.Targets(
                labels: part.labels, smoothing: Float(train.labelSmoothing), classWeights: classWeights)
            if train.mixing.isOn {
                var generator = randomness(at: globalIteration, microBatch: index, purpose: 1)
                let (lambda, box) = train.mixing.draw(
                    height: clips.shape[2], width: clips.shape[3], using: &generator)
                if lambda < 1 {
                    clips = Mixing.mix(clips, lambda: lambda, box: box)
                    targets = targets.mixed(lambda: Float(lambda))
                }
            }
            let logits = model.forward(clips, training: true, timing: timing)
            let (loss, gradient) = SoftmaxCrossEntropy.lossAndGradient(logits: logits, targets: targets)
            guard loss.isFinite else {
                throw Divergence(iteration: globalIteration + 1, what: "the loss became \(loss)")
            }
            for i in 0..<(parts.count > 1 ? gradient.count : 0) { gradient.data[i] /= Float(parts.count) }
            losses += loss
            correct += part.labels.indices.filter { argmax(logits, row: $0) == part.labels[$0] }.count
            _ = model.backward(gradient, timing: backwardTiming)
        }
        let loss = losses / Float(parts.count)
        let reduceStart = DispatchTime.now().uptimeNanoseconds
        parallel.averageGradients(of: optimizer.parameters, bucket: &bucket)
        let allreduce = parallel.isDistributed ? Double(DispatchTime.now().uptimeNanoseconds - reduceStart) / 1e9 : 0
        if let name = optimizer.step(
            lr: lr, gradientScale: train.gradClip > 0 ? optimizer.clipCoefficient(maxNorm: train.gradClip) : 1)
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

    /// The draws of one micro-batch of one iteration of one rank, from (seed, iteration, rank,
    /// micro-batch): nothing to save in checkpoints, and no two ranks or micro-batches draw the
    /// same. Purpose 0 is dropout's masks (the first micro-batch draws as an iteration without
    /// accumulation), 1 mixup's and cutmix's lambda and box.
    func randomness(at globalIteration: Int, microBatch: Int = 0, purpose: UInt64 = 0) -> SeededGenerator {
        SeededGenerator(
            seed: UInt64(train.seed),
            stream: ((UInt64(globalIteration) << 16 | UInt64(parallel.rank)) + 1) ^ UInt64(microBatch) << 56
                ^ purpose << 63)
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
