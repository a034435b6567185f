import Foundation
import NLData
import NLTensor
import NLVideo

/// The learning-rate policies after the warmup ([train] lr_policy). A new one is a case here, its
/// formula in `rate(at:)`, and its meaning in the `@Key` of TrainSection.lrPolicy (docs/extending.md).
public enum LRPolicy: String, CaseIterable, Sendable { case step, cosine }

/// The warmups ([train] warmup), likewise.
public enum WarmupKind: String, CaseIterable, Sendable { case none, linear, constant }

/// The learning rate at every iteration, as mmcv's LrUpdaterHooks: a regular schedule (step decay
/// by epoch, or cosine annealing by iteration) with a warmup over its first iterations.
public struct LearningRateSchedule: Sendable, Equatable {
    public var base: Double
    public var policy: LRPolicy
    /// Step policy: epochs at which the rate is multiplied by `gamma`.
    public var steps: [Int]
    public var gamma: Double
    /// Cosine policy: the final rate.
    public var minimum: Double
    public var warmup: WarmupKind
    public var warmupIterations: Int
    /// The warmup starts at the regular rate times this (mmcv's warmup_ratio).
    public var warmupStartFactor: Double
    public var epochs: Int
    public var iterationsPerEpoch: Int

    public init(_ train: TrainSection, iterationsPerEpoch: Int) {
        base = train.lr
        policy = train.lrPolicy
        steps = train.lrSteps
        gamma = train.lrGamma
        minimum = train.lrMin
        warmup = train.warmup
        warmupIterations =
            train.warmupIterations > 0
            ? train.warmupIterations : Int((train.warmupEpochs * Double(iterationsPerEpoch)).rounded())
        warmupStartFactor = train.warmupStartFactor
        epochs = train.epochs
        self.iterationsPerEpoch = max(1, iterationsPerEpoch)
    }

    /// The rate for global iteration `iteration` (0-based, counting every epoch's iterations).
    public func rate(at iteration: Int) -> Double {
        let regular: Double
        switch policy {
        case .step:
            let epoch = iteration / iterationsPerEpoch
            regular = base * pow(gamma, Double(steps.filter { epoch >= $0 }.count))
        case .cosine:
            let progress = Double(iteration) / Double(max(1, epochs * iterationsPerEpoch))
            regular = minimum + (base - minimum) * (1 + cos(Double.pi * progress)) / 2
        }
        guard iteration < warmupIterations else { return regular }
        switch warmup {
        case .none: return regular
        case .constant: return regular * warmupStartFactor
        case .linear:
            let k = (1 - Double(iteration) / Double(warmupIterations)) * (1 - warmupStartFactor)
            return regular * (1 - k)
        }
    }
}
