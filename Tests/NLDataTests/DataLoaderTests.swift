import Foundation
import NLData
import NLTestSupport
import Testing
import NLTensor
import NLVideo

struct DataLoaderTests {
    func loader(
        _ dataset: Dataset, workers: Int, mode: DataLoader.Mode = .training, batchSize: Int = 4, rank: Int = 0,
        worldSize: Int = 1,
        pipeline: ClipPipeline = SyntheticData.pipeline, numClips: Int = 2, log: BadVideoLog? = nil
    ) -> DataLoader {
        var options = DataLoader.Options(batchSize: batchSize, workers: workers, seed: 11)
        (options.rank, options.worldSize) = (rank, worldSize)
        let sampler = SampleFrames(
            clipLength: 8, frameInterval: 2, numClips: mode == .training ? 1 : numClips, testMode: mode == .evaluation)
        var clips = pipeline
        clips.sampler = sampler
        return DataLoader(dataset: dataset, pipeline: clips, options: options, badVideos: log)
    }

    func all(_ iterator: BatchIterator) throws -> [(clips: [Float], labels: [Int], videos: [Int], failed: [Bool])] {
        defer { iterator.stop() }
        var out: [(clips: [Float], labels: [Int], videos: [Int], failed: [Bool])] = []
        while let batch = try iterator.next() {
            out.append((batch.clips.array, batch.labels, batch.videos, batch.failed))
        }
        return out
    }

    /// The same batches in the same order with 0, 1 or 3 workers; resuming mid-epoch gives the
    /// rest of them; another epoch shuffles differently.
    @Test func deterministicWhateverTheWorkers() throws {
        let dataset = try SyntheticData.dataset()
        let reference = try all(loader(dataset, workers: 0).batches(epoch: 1))
        #expect(reference.count == dataset.entries.count / 4)  // drop_last
        #expect(reference.allSatisfy { $0.clips.count == 4 * 8 * 48 * 48 * 3 })
        for workers in [1, 3] {
            let batches = try all(loader(dataset, workers: workers).batches(epoch: 1))
            #expect(batches.count == reference.count)
            for (a, b) in zip(batches, reference) {
                #expect(a.clips == b.clips && a.labels == b.labels && a.videos == b.videos)
            }
        }
        let resumed = try all(loader(dataset, workers: 2).batches(epoch: 1, from: 2))
        #expect(resumed.count == reference.count - 2 && resumed[0].clips == reference[2].clips)
        let other = try all(loader(dataset, workers: 2).batches(epoch: 2))
        #expect(other[0].videos != reference[0].videos)
        #expect(Set(reference.flatMap(\.videos)).count == reference.count * 4)  // no video twice in an epoch
        for batch in reference {
            for (v, label) in zip(batch.videos, batch.labels) { #expect(dataset.entries[v].label == label) }
        }
    }

    /// The class-balanced sampler: an epoch of as many draws as videos, each class as likely
    /// (a 90/10 dataset gives about half of each), the same for the same epoch, and a video drawn
    /// twice gets a clip of its own each time.
    @Test func classBalancedEpochsDrawEachClassAlike() throws {
        let synthetic = try SyntheticData.dataset()
        let entries = (0..<100).map { i in
            VideoEntry(path: synthetic.entries[i % synthetic.entries.count].path, label: i < 90 ? 0 : 1, source: "x")
        }
        let dataset = Dataset(entries: entries, classes: ["common", "rare"])
        var options = DataLoader.Options(batchSize: 4, workers: 0, seed: 11)
        options.classBalanced = true
        let balanced = DataLoader(dataset: dataset, pipeline: SyntheticData.pipeline, options: options)
        var rare = 0
        for epoch in 0..<20 {
            let order = balanced.order(epoch: epoch)
            #expect(order.count == 100 && order == balanced.order(epoch: epoch))
            rare += order.filter { entries[$0].label == 1 }.count
        }
        #expect(abs(Double(rare) / 2000 - 0.5) < 0.05, "\(rare) of 2000 draws from the rare class")
        let order = balanced.order(epoch: 0)
        let twice = try #require(order.indices.first { i in order[..<i].contains(order[i]) })
        let first = try #require(order.firstIndex(of: order[twice]))
        let a = try balanced.views(of: order[twice], epoch: 0, attempt: 0, job: first)
        let b = try balanced.views(of: order[twice], epoch: 0, attempt: 0, job: twice)
        #expect(a.map(\.pixels) != b.map(\.pixels), "two draws of a video, two clips")
    }

    @Test func shardsSplitEveryEpoch() throws {
        let dataset = try SyntheticData.dataset()
        let l0 = loader(dataset, workers: 0, rank: 0, worldSize: 2),
            l1 = loader(dataset, workers: 0, rank: 1, worldSize: 2)
        let (a, b) = (l0.order(epoch: 3), l1.order(epoch: 3))
        #expect(
            a.count == (dataset.entries.count + 1) / 2 && Set(a).isDisjoint(with: b) || dataset.entries.count % 2 == 1)
        #expect(Set(a + b) == Set(dataset.entries.indices))
    }

    /// Evaluation: every video once, in order, clips x crops views each, the last batch kept.
    @Test func evaluationViews() throws {
        let dataset = try SyntheticData.dataset("val.csv")
        let three = ClipPipeline(
            sampler: SyntheticData.sampler, resize: ShortEdgeResize(48), crop: ThreeCrop(size: 48),
            normalize: SyntheticData.pipeline.normalize)
        let l = loader(dataset, workers: 2, mode: .evaluation, batchSize: 5, pipeline: three)
        #expect(l.viewsPerVideo == 6)
        let batches = try all(l.batches(epoch: 0))
        let videos = batches.flatMap(\.videos)
        #expect(videos == dataset.entries.indices.flatMap { [Int](repeating: $0, count: 6) })
        #expect(batches.map(\.labels.count) == [5, 5, 5, 5, 5, 5, 5, 1] && !batches.flatMap(\.failed).contains(true))
    }

    /// Many views a video (10 clips x 3 crops, the paper's test) span several batches of any size,
    /// with and without workers: every view arrives once, in order, with the same pixels whatever
    /// the batch size. (Batches smaller than a video's views used to wait forever.)
    @Test(.timeLimit(.minutes(1)), arguments: [0, 1, 2]) func viewsSpanningBatches(workers: Int) throws {
        let dataset = try SyntheticData.dataset("val.csv")
        let three = ClipPipeline(
            sampler: SyntheticData.sampler, resize: ShortEdgeResize(32), crop: ThreeCrop(size: 32),
            normalize: SyntheticData.pipeline.normalize)
        let whole = try all(
            loader(
                dataset, workers: 0, mode: .evaluation, batchSize: 30 * dataset.entries.count, pipeline: three,
                numClips: 10
            ).batches(epoch: 0))
        #expect(whole.count == 1)
        let reference = whole[0].clips, viewSize = reference.count / (30 * dataset.entries.count)
        for batchSize in [1, 4, 7, 8, 29, 31, 64] {
            let l = loader(
                dataset, workers: workers, mode: .evaluation, batchSize: batchSize, pipeline: three, numClips: 10)
            let batches = try all(l.batches(epoch: 0))
            #expect(batches.count == l.batchesPerEpoch)
            #expect(batches.flatMap(\.videos) == dataset.entries.indices.flatMap { [Int](repeating: $0, count: 30) })
            #expect(batches.flatMap(\.clips) == reference, "batch \(batchSize), \(workers) workers")
            #expect(batches.allSatisfy { $0.clips.count == $0.videos.count * viewSize })
        }
    }

    /// A video that does not decode is replaced in training (logged once, listed in
    /// bad_videos.txt) and marked in evaluation; past the allowed fraction the epoch stops.
    @Test func brokenVideos() throws {
        let dataset = try SyntheticData.dataset("train_with_problems.csv")
        #expect(dataset.missing.count == 1 && dataset.missing[0].source.hasSuffix("train_with_problems.csv:21"))
        let broken = dataset.entries.firstIndex { $0.path.contains("BROKENVIDEO") }!
        let file = "\(scratchDirectory("bad", made: true))/bad_videos.txt"
        let reports = Reports()
        let log = BadVideoLog(file: file, maxFraction: 0.5, report: { reports.add($0) })
        let l = loader(dataset, workers: 2, batchSize: 1, log: log)
        let batches = try all(l.batches(epoch: 0))
        #expect(batches.count == dataset.entries.count && !batches.flatMap(\.videos).contains(broken))
        #expect(reports.lines.count == 1 && reports.lines[0].contains("train_with_problems.csv:20"))
        let listed = try String(contentsOfFile: file, encoding: .utf8)
        #expect(listed.hasPrefix(dataset.entries[broken].path + "\t"))
        // Evaluation keeps the video and marks its views failed.
        let eval = try all(
            loader(
                dataset, workers: 1, mode: .evaluation, batchSize: 2,
                log: BadVideoLog(file: nil, maxFraction: 1, report: { _ in })
            ).batches(epoch: 0))
        let failedVideos = Set(zip(eval.flatMap(\.videos), eval.flatMap(\.failed)).filter(\.1).map(\.0))
        #expect(failedVideos == [broken])
        // No videos may fail: the first failure stops the epoch with a data error.
        let strict = loader(
            dataset, workers: 1, batchSize: 1, log: BadVideoLog(file: nil, maxFraction: 0, report: { _ in }))
        #expect(throws: DataError.self) { try all(strict.batches(epoch: 0)) }
    }
}

final class Reports: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    func add(_ line: String) { lock.withLock { stored.append(line) } }
    var lines: [String] { lock.withLock { stored } }
}
