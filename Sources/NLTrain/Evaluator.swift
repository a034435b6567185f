import Foundation
import NLData
import NLModels
import NLDistributed
import NLLayers
import NLTensor
import NLVideo

/// Accuracy over a dataset's videos.
public struct EvaluationResult: Sendable {
    public var top1: Double
    public var top5: Double
    public var meanClassAccuracy: Double
    /// The cross-entropy of the videos read: the mean of -log of each one's averaged probability
    /// of its label (at least 1e-12, so a certain miss counts 27.6, not infinity).
    public var loss: Double
    /// Per class: its name and top-1 accuracy over its videos (nil without videos).
    public var perClass: [(name: String, accuracy: Double?)]
    /// Per class: its videos (read or not).
    public var perClassVideos: [Int]
    /// Videos scored, and videos that could not be read (counted as errors in the accuracies).
    public var videos: Int
    public var failed: Int { failures.count }
    /// The videos that could not be read, with why.
    public var failures: [(path: String, error: String)]
    /// Each video's averaged class probabilities, label and path (for --dump).
    public var scores: [(path: String, label: Int, probabilities: [Float])]
}

public enum Evaluator {
    /// An evaluation stopped before its end (a signal during validation).
    struct Interrupted: Error {}

    /// Runs every view of every video through the model in inference mode, averages each video's
    /// softmax probabilities over its views (mmaction2's average_clips='prob'), and scores the
    /// videos. Videos that fail to decode count as misses. `progress` counts batches.
    public static func evaluate(
        _ model: Recognizer, loader: DataLoader, progress: ProgressDisplay? = nil
    ) throws -> EvaluationResult {
        try evaluate(model, loader: loader, progress: progress, parallel: DataParallel(nil))!
    }

    /// The same over a data-parallel job: each rank scores its share of the videos (the loader's
    /// rank and world size) and rank 0 gathers them and returns the result; the others, nil.
    /// `interrupted` is asked after every batch (on every rank alike); when it says so, the
    /// evaluation ends by throwing `Interrupted`.
    static func evaluate(
        _ model: Recognizer, loader: DataLoader, progress: ProgressDisplay?, parallel: DataParallel,
        stopWhileWaiting: (() -> Bool)? = nil, interrupted: () -> Bool = { false }
    ) throws -> EvaluationResult? {
        let local = try videoScores(
            model, loader: loader, progress: progress, stopWhileWaiting: stopWhileWaiting, interrupted: interrupted)
        guard let parts = parallel.gather(local.encoded()) else { return nil }
        let all = try parts.reduce(into: VideoScores()) { $0.merge(try VideoScores(decoding: $1)) }
        let dataset = loader.dataset
        let scores = all.sums.keys.sorted().filter { all.failed[$0] == nil }.map { video in
            (
                dataset.entries[video].path, dataset.entries[video].label,
                all.sums[video]!.map { Float($0 / Double(all.views[video]!)) }
            )
        }
        let missed = all.failed.sorted { $0.key < $1.key }.map {
            (dataset.entries[$0.key].path, dataset.entries[$0.key].label, $0.value)
        }
        return score(scores, missed: missed, classes: dataset.classes)
    }

    /// This process's share of the loader's videos through the model: each video's summed
    /// softmax probabilities and views, or its error.
    static func videoScores(
        _ model: Recognizer, loader: DataLoader, progress: ProgressDisplay?, stopWhileWaiting: (() -> Bool)? = nil,
        interrupted: () -> Bool = { false }
    ) throws -> VideoScores {
        var scores = VideoScores()
        let iterator = loader.batches(epoch: 0)
        iterator.shouldStop = stopWhileWaiting
        defer { iterator.stop() }
        while let batch = try iterator.next() {
            let probabilities = Inference.run {
                SoftmaxCrossEntropy.softmax(model.forward(batch.clips, training: false))
            }
            for (k, video) in batch.videos.enumerated() {
                scores.add(video: video, probabilities: batch.failed[k] ? nil : probabilities, row: k)
            }
            progress?.advance()
            if interrupted() { throw Interrupted() }
        }
        progress?.finish()
        let errors = loader.badVideos?.failures ?? [:]
        for video in scores.failed.keys {
            scores.failed[video] = errors[loader.dataset.entries[video].path] ?? "could not be read"
        }
        return scores
    }

    /// Class indices from the most probable down; a tie goes to the lower index.
    static func classesByScore(_ probabilities: [Float]) -> [Int] {
        probabilities.indices.sorted {
            probabilities[$0] != probabilities[$1] ? probabilities[$0] > probabilities[$1] : $0 < $1
        }
    }

    /// Top-1, top-5, mean class accuracy and per-class accuracy of scored videos; `missed` videos
    /// (no scores) count as wrong.
    public static func score(
        _ scores: [(path: String, label: Int, probabilities: [Float])],
        missed: [(path: String, label: Int, error: String)] = [],
        classes: [String]
    ) -> EvaluationResult {
        var hits1 = 0, hits5 = 0, loss = 0.0
        var perClassTotal = [Int](repeating: 0, count: classes.count), perClassHits = perClassTotal
        for (_, label, probabilities) in scores {
            let ranked = classesByScore(probabilities)
            if ranked.first == label { hits1 += 1; perClassHits[label] += 1 }
            if ranked.prefix(5).contains(label) { hits5 += 1 }
            perClassTotal[label] += 1
            loss -= log(max(Double(probabilities[label]), 1e-12))
        }
        for (_, label, _) in missed { perClassTotal[label] += 1 }
        let total = scores.count + missed.count
        let perClass = classes.indices.map { c in
            (classes[c], perClassTotal[c] > 0 ? Double(perClassHits[c]) / Double(perClassTotal[c]) : nil)
        }
        let present = perClass.compactMap(\.1)
        return EvaluationResult(
            top1: total > 0 ? Double(hits1) / Double(total) : 0, top5: total > 0 ? Double(hits5) / Double(total) : 0,
            meanClassAccuracy: present.isEmpty ? 0 : present.reduce(0, +) / Double(present.count),
            loss: scores.isEmpty ? 0 : loss / Double(scores.count),
            perClass: perClass, perClassVideos: perClassTotal, videos: total,
            failures: missed.map { ($0.path, $0.error) }, scores: scores)
    }
}

extension Evaluator {
    /// What nleval does: `checkpoint`'s weights on `split` of `config`'s dataset, every video seen
    /// as `clips` clips x `crops` crops (the config's eval.num_clips and data.test_crop by default).
    /// Videos that cannot be read are reported through `log` and counted as misses. Progress goes
    /// to `progressOutput` (a bar on a terminal, lines otherwise). Under mpirun each process
    /// evaluates its share and rank 0 gets the result; the others get nil.
    public static func evaluate(
        checkpoint: Checkpoint, config: Config, split: DataSetup.Split, clips: Int? = nil, crops: Int? = nil,
        progressOutput: FileHandle? = nil, log: @escaping @Sendable (String) -> Void
    ) throws -> EvaluationResult? {
        let model = try config.makeModel()
        try checkpoint.load(into: model)
        let dataset = try DataSetup.dataset(config, split: split)
        for problem in dataset.problems.prefix(10) { log(problem) }
        if let problem = dataset.labelProblem(numClasses: config.model.spec.numClasses) { throw problem }
        guard dataset.classes.count <= config.model.spec.numClasses else {
            throw DataError(
                "\(checkpoint.path): the model has \(config.model.spec.numClasses) classes, the dataset \(dataset.classes.count)"
            )
        }
        let failures = BadVideoLog(file: nil, maxFraction: 1, action: "counting as a miss", report: log)
        let parallel = DataParallel()
        let loader = try DataSetup.evaluationLoader(
            config, dataset: dataset, clips: clips, crops: crops, badVideos: failures,
            rank: parallel.rank, worldSize: parallel.size)
        try DataSetup.prepare(model, toEvaluate: loader, config: config) { if parallel.isRoot { log($0) } }
        let progress =
            parallel.isRoot
            ? progressOutput.map {
                ProgressDisplay(total: loader.batchesPerEpoch, label: "evaluating", unit: "batches", output: $0)
            } : nil
        let result = try evaluate(model, loader: loader, progress: progress, parallel: parallel)
        // Scores that are not finite are not a result: ranked anyhow, they would read as one.
        let broken = result?.scores.filter { !$0.probabilities.allSatisfy(\.isFinite) } ?? []
        if let first = broken.first {
            throw CheckpointError(
                checkpoint.path,
                "its outputs are not finite for \(broken.count) of \(result!.scores.count) videos (\(first.path) first): "
                    + "its weights or BatchNorm statistics are broken; no result")
        }
        return result
    }
}

extension EvaluationResult {
    /// nleval --json: the metrics (with the loss), and each class in class order: its name, top-1
    /// accuracy (null without videos) and videos.
    public func json(extra: [String: Any] = [:]) -> String {
        let perClassAccuracy = perClass.indices.map { c -> [String: Any] in
            ["class": perClass[c].name, "top1": perClass[c].accuracy ?? NSNull(), "videos": perClassVideos[c]]
        }
        let values: [String: Any] = [
            "top1": top1, "top5": top5, "mean_class_accuracy": meanClassAccuracy, "loss": loss, "videos": videos,
            "failed": failed, "failures": failures.map { ["path": $0.path, "error": $0.error] },
            "per_class": perClassAccuracy,
        ]
        return jsonLine(values.merging(extra) { a, _ in a })
    }

    /// nleval --dump: one line a video, its path, label and the probability of every class (the
    /// model's classes past the dataset's as class_N).
    public func scoresCSV(classes: [String]) -> String {
        func field(_ s: String) -> String {
            s.contains(",") || s.contains("\"") ? "\"\(s.replacingOccurrences(of: "\"", with: "\"\""))\"" : s
        }
        let width = scores.first?.probabilities.count ?? classes.count
        let names = classes + (classes.count..<max(width, classes.count)).map { "class_\($0)" }
        var lines = [(["path", "label"] + names).map(field).joined(separator: ",")]
        for (path, label, probabilities) in scores {
            lines.append(
                ([field(path), field(classes[label])] + probabilities.map { String(format: "%.6f", $0) }).joined(
                    separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The one-line summary nleval prints.
    public var summary: String {
        String(
            format: "top-1 %.2f%%  top-5 %.2f%%  mean class accuracy %.2f%%  (%d videos, %d failed)",
            top1 * 100, top5 * 100, meanClassAccuracy * 100, videos, failed)
    }
}

/// Each video's summed class probabilities and views, and the videos that failed: what a rank
/// sends rank 0 after evaluating its share.
struct VideoScores {
    var sums: [Int: [Double]] = [:]
    var views: [Int: Int] = [:]
    /// Failed videos, with their errors.
    var failed: [Int: String] = [:]

    /// Adds one view: row `row` of `probabilities` (nil for a video that failed).
    mutating func add(video: Int, probabilities: Tensor?, row: Int) {
        guard let probabilities else { failed[video] = failed[video] ?? ""; return }
        let width = probabilities.channels
        var sum = sums[video] ?? [Double](repeating: 0, count: width)
        for c in 0..<width { sum[c] += Double(probabilities[row * width + c]) }
        sums[video] = sum
        views[video, default: 0] += 1
    }

    /// Another rank's scores. A video two ranks both saw (the last shares are padded with the
    /// first videos, as PyTorch's DistributedSampler does) is counted once.
    mutating func merge(_ other: VideoScores) {
        for (video, sum) in other.sums where sums[video] == nil && failed[video] == nil {
            (sums[video], views[video]) = (sum, other.views[video])
        }
        for (video, error) in other.failed where sums[video] == nil { failed[video] = error }
    }

    /// As bytes: the number of words, then per scored video its index, views, width and sums;
    /// then the failed videos and their errors as JSON.
    func encoded() -> Data {
        var words: [Double] = []
        for (video, sum) in sums.sorted(by: { $0.key < $1.key }) {
            words += [Double(video), Double(views[video]!), Double(sum.count)] + sum
        }
        var data = withUnsafeBytes(of: UInt64(words.count)) { Data($0) }
        data += words.withUnsafeBytes { Data($0) }
        data += try! JSONEncoder().encode(Dictionary(uniqueKeysWithValues: failed.map { (String($0.key), $0.value) }))
        return data
    }

    init() {}

    init(decoding data: Data) throws {
        let malformed = TrainingError("malformed scores from another rank")
        guard data.count >= 8 else { throw malformed }
        let count = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        guard data.count >= 8 + 8 * count else { throw malformed }
        let words = data.withUnsafeBytes { raw in
            (0..<count).map { raw.loadUnaligned(fromByteOffset: 8 + 8 * $0, as: Double.self) }
        }
        var i = 0
        while i + 3 <= words.count {
            let (video, views, width) = (Int(words[i]), Int(words[i + 1]), Int(words[i + 2]))
            guard i + 3 + width <= words.count else { throw malformed }
            (sums[video], self.views[video]) = (Array(words[(i + 3)..<(i + 3 + width)]), views)
            i += 3 + width
        }
        let errors = try JSONDecoder().decode([String: String].self, from: data.dropFirst(8 + 8 * count))
        for (video, error) in errors { failed[Int(video) ?? -1] = error }
    }
}
