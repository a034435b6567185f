import Foundation
import NLData
import NLTrain
import NLTensor
import NLVideo

/// The loader benchmark: training batches of a config's [data] as nltrain's loader makes them
/// (decoding, scale jitter, crops, flips, normalising into the model's layout), with nothing
/// consuming them, so the figure is the most the loader can feed.
public struct LoaderBenchmark {
    public var config: Config
    public var batches = 20

    public init(config: Config) { self.config = config }

    /// Reads `batches` batches of epoch 0, starting over while the dataset is short of them.
    public func run() throws -> Throughput {
        let dataset = try DataSetup.dataset(config, split: .train)
        let loader = try DataSetup.trainingLoader(config, dataset: dataset, badVideos: nil)
        let start = Date()
        var clips = 0, epoch = 0
        while clips < batches * config.train.batchSize {
            let iterator = loader.batches(epoch: epoch)
            defer { iterator.stop() }
            while clips < batches * config.train.batchSize, let batch = try iterator.next() { clips += batch.count }
            epoch += 1
        }
        return Throughput(clips: clips, seconds: Date().timeIntervalSince(start))
    }
}
