import Foundation
import NLTensor
import NLVideo

/// One batch: clips (count, T, H, W, 3) in the model's layout, with their labels and videos.
public struct Batch: @unchecked Sendable {
    /// Position of the batch in its epoch.
    public let index: Int
    /// Valid until the next batch is asked for: the loader then refills its buffer.
    public let clips: Tensor
    public let labels: [Int]
    /// Dataset index of each clip's video.
    public let videos: [Int]
    /// Evaluation only: clips whose video could not be read (their pixels are zeros).
    public let failed: [Bool]
    public var count: Int { labels.count }
}

/// Decodes and transforms clips on worker threads into a bounded ring of batch buffers.
///
/// Every clip's randomness (sampling, short side, crop, flip) comes from (seed, epoch, video,
/// attempt), never from which worker made it, so an epoch gives the same batches in the same order
/// with any number of workers, and resuming at (epoch, iteration) skips to them without decoding
/// what comes before. Training shuffles per epoch, drops the last incomplete batch, and replaces a
/// clip whose video fails by one from another video chosen the same way; evaluation keeps the
/// order, gives each video `numClips x crops` views, and marks failed ones instead.
public final class DataLoader: @unchecked Sendable {
    public enum Mode: Sendable { case training, evaluation }

    public struct Options: Sendable {
        public var batchSize: Int
        /// Decoding threads; 0 decodes on the caller's thread.
        public var workers: Int
        public var seed: UInt64
        /// Batches decoded ahead: the ring's size is prefetch + 1.
        public var prefetch = 2
        /// This process's share of every epoch (PyTorch's DistributedSampler semantics).
        public var rank = 0
        public var worldSize = 1
        /// Seconds a worker may spend on one video before it counts as broken (a read that a hung
        /// network or FUSE mount stalls); 0: no limit.
        public var readTimeout: TimeInterval = 0
        /// Training: every class equally likely in each draw of an epoch's videos, with
        /// replacement (torch's WeightedRandomSampler with weights 1 / the class's videos),
        /// instead of each video once.
        public var classBalanced = false

        public init(batchSize: Int, workers: Int, seed: UInt64) {
            (self.batchSize, self.workers, self.seed) = (batchSize, workers, seed)
        }
    }

    public let dataset: Dataset
    public let pipeline: ClipPipeline
    public let options: Options
    public let badVideos: BadVideoLog?

    public init(dataset: Dataset, pipeline: ClipPipeline, options: Options, badVideos: BadVideoLog? = nil) {
        precondition(options.batchSize > 0 && options.worldSize > 0 && (0..<options.worldSize).contains(options.rank))
        (self.dataset, self.pipeline, self.options, self.badVideos) = (dataset, pipeline, options, badVideos)
    }

    /// Training when the pipeline joins each video's clips into one view (a training sampler),
    /// evaluation when each clip is a view of its own (a test-mode sampler).
    public var mode: Mode { pipeline.joinsClips ? .training : .evaluation }

    public var viewsPerVideo: Int { pipeline.viewsPerVideo }
    /// (T, H, W, 3) of every view.
    public var clipShape: [Int] { pipeline.viewShape }

    /// This rank's videos for `epoch`, in order: shuffled from (seed, epoch) in training (or
    /// drawn class-balanced), padded to a multiple of the world size by repeating the first ones,
    /// then every worldSize-th.
    public func order(epoch: Int) -> [Int] {
        var all = Array(dataset.entries.indices)
        if mode == .training {
            var generator = SeededGenerator(seed: options.seed, stream: UInt64(epoch))
            if options.classBalanced {
                let byClass = Dictionary(grouping: all) { dataset.entries[$0].label }.values.sorted { $0[0] < $1[0] }
                all = all.map { _ in byClass.randomElement(using: &generator)!.randomElement(using: &generator)! }
            } else {
                all.shuffle(using: &generator)
            }
        }
        let perRank = (all.count + options.worldSize - 1) / options.worldSize
        let padded = all + all.prefix(perRank * options.worldSize - all.count)
        return Array(stride(from: options.rank, to: padded.count, by: options.worldSize).map { padded[$0] })
    }

    public var videosPerEpoch: Int { (dataset.entries.count + options.worldSize - 1) / options.worldSize }

    /// Training drops the last incomplete batch; evaluation keeps it.
    public var batchesPerEpoch: Int {
        let views = videosPerEpoch * viewsPerVideo
        return mode == .training ? views / options.batchSize : (views + options.batchSize - 1) / options.batchSize
    }

    /// The batches of `epoch` from batch `iteration` on.
    public func batches(epoch: Int, from iteration: Int = 0) -> BatchIterator {
        BatchIterator(loader: self, epoch: epoch, first: iteration)
    }

    /// The views of dataset video `video` for `epoch`, through the clip pipeline. Draws come from
    /// (seed, epoch, video, attempt), and in a class-balanced epoch from the draw (job) too.
    public func views(of video: Int, epoch: Int, attempt: Int, job: Int = 0) throws -> [VideoFrames] {
        Self.simulateStalledRead(dataset.entries[video].path)
        // A class-balanced epoch draws a video more than once: each draw (job) its own clip.
        let draw = options.classBalanced ? UInt64(job + 1) << 20 : 0
        var generator = SeededGenerator(
            seed: options.seed,
            stream: (UInt64(epoch) << 40 ^ UInt64(video) << 8 ^ UInt64(attempt)) &+ draw &* 0x9E37_79B9)
        let reader = try VideoReader(path: dataset.entries[video].path)
        if let truncation = reader.info.truncation {
            badVideos?.notePartial(dataset.entries[video], truncation: truncation)
        }
        return try pipeline.views(of: reader, frames: dataset.entries[video].frames, using: &generator)
    }

    /// `NL_SIMULATE_STALLED_READ=TEXT` makes the read of every video whose path holds TEXT stall
    /// for good, as on a hung network or FUSE mount: how the tests show the read timeout and a
    /// stop while a batch waits. Unset, it costs one lookup per video.
    static let stalledReads = ProcessInfo.processInfo.environment["NL_SIMULATE_STALLED_READ"].flatMap {
        $0.isEmpty ? nil : $0
    }

    static func simulateStalledRead(_ path: String) {
        guard let text = stalledReads, path.contains(text) else { return }
        while true { sleep(3600) }
    }

    /// A replacement for a training video that failed: another video drawn from (seed, epoch,
    /// video, attempt), so the same in every run.
    func replacement(for video: Int, epoch: Int, attempt: Int) -> Int {
        var generator = SeededGenerator(
            seed: options.seed ^ 0x5EED, stream: UInt64(epoch) << 40 ^ UInt64(video) << 8 ^ UInt64(attempt))
        let other = generator.below(max(dataset.entries.count - 1, 1))
        return dataset.entries.count > 1 && other >= video ? other + 1 : other
    }
}
