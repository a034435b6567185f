import Foundation
import NLData
import NLModels
import NLTrain
import NLTensor
import NLVideo

/// The whole training pipeline of a config, as nltrain runs it but writing nothing: the loader's
/// workers decoding and transforming ahead, nltrain's own step (TrainingStep) training. Reports
/// clips per second end to end and the share of the time the step waited for data.
public struct PipelineBenchmark {
    public var config: Config
    public var iterations = 10

    public init(config: Config) { self.config = config }

    public struct Result: Sendable {
        public let clips: Int
        public let seconds: Double
        /// Seconds spent waiting for batches, the first one (the loader's start) excluded.
        public let waitSeconds: Double
        public let firstBatchSeconds: Double
        public var clipsPerSecond: Double { Double(clips) / seconds }
        public var waitShare: Double { waitSeconds / seconds }
    }

    /// Times `iterations` iterations after the first batch (which only measures the start),
    /// going on into the next epochs as training does (each starts its loader afresh).
    public func run() throws -> Result {
        let dataset = try DataSetup.dataset(config, split: .train)
        let loader = try DataSetup.trainingLoader(config, dataset: dataset, badVideos: nil)
        let model = try config.makeModel(seed: UInt64(config.train.seed))
        try DataSetup.requireClip(model, loader: loader, config: config)
        let step = TrainingStep(
            model: model, optimizer: Optimizer(model: model, config.train), train: config.train,
            iterationsPerEpoch: loader.batchesPerEpoch)
        var iterator = loader.batches(epoch: 0), epoch = 0, iteration = 0
        func train(_ batch: Batch) throws {
            _ = try step.run(batch.clips, labels: batch.labels, globalIteration: iteration)
            iteration += 1
        }
        try train(try iterator.next()!)  // warm-up: the loader's start and the first step's allocations
        let (firstBatch, start) = (iterator.waitSeconds, Date())
        var (clips, waited) = (0, -firstBatch)
        while clips < iterations * config.train.batchSize {
            guard let batch = try iterator.next() else {
                waited += iterator.waitSeconds
                iterator.stop()
                epoch += 1
                iterator = loader.batches(epoch: epoch)
                continue
            }
            try train(batch)
            clips += batch.count
        }
        waited += iterator.waitSeconds
        iterator.stop()
        return Result(
            clips: clips, seconds: Date().timeIntervalSince(start), waitSeconds: waited, firstBatchSeconds: firstBatch)
    }
}
