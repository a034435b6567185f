import Foundation
import NLData
import NLModels

/// The whole training pipeline of a config, as nltrain runs it but writing nothing: the loader's
/// workers decoding and transforming ahead, the model stepping with SGD. Reports clips per second
/// end to end and the share of the time the step waited for data.
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
        let model = Recognizer(spec: config.model.spec, seed: UInt64(config.train.seed))
        let sgd = SGD(parameters: model.parameters.filter { $0.parameter.requiresGradient }, momentum: config.train.momentum,
                      nesterov: config.train.nesterov, weightDecay: config.train.weightDecay)
        func step(_ batch: Batch) {
            model.zeroGradients()
            let (_, gradient) = SoftmaxCrossEntropy.lossAndGradient(logits: model.forward(batch.clips, training: true), labels: batch.labels)
            _ = model.backward(gradient)
            sgd.step(lr: config.train.lr)
        }
        var iterator = loader.batches(epoch: 0), epoch = 0
        step(try iterator.next()!)  // warm-up: the loader's start and the first step's allocations
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
            step(batch)
            clips += batch.count
        }
        waited += iterator.waitSeconds
        iterator.stop()
        return Result(clips: clips, seconds: Date().timeIntervalSince(start), waitSeconds: waited, firstBatchSeconds: firstBatch)
    }
}
