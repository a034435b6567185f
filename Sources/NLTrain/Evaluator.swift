import Foundation
import NLData
import NLModels

/// Accuracy over a dataset's videos.
public struct EvaluationResult: Sendable {
    public var top1: Double
    public var top5: Double
    public var meanClassAccuracy: Double
    /// Per class: its name and top-1 accuracy over its videos (nil without videos).
    public var perClass: [(name: String, accuracy: Double?)]
    /// Videos scored, and videos that could not be read (counted as errors in the accuracies).
    public var videos: Int
    public var failed: Int
    /// Each video's averaged class probabilities, label and path (for --dump).
    public var scores: [(path: String, label: Int, probabilities: [Float])]
}

public enum Evaluator {
    /// Runs every view of every video through the model in inference mode, averages each video's
    /// softmax probabilities over its views (mmaction2's average_clips='prob'), and scores the
    /// videos. Videos that fail to decode count as misses. `progress` counts batches.
    public static func evaluate(_ model: Recognizer, loader: DataLoader, progress: ProgressDisplay? = nil) throws -> EvaluationResult {
        let dataset = loader.dataset, classes = dataset.classes.count
        var sums = [Int: [Double]](), views = [Int: Int](), failed = Set<Int>()
        let iterator = loader.batches(epoch: 0)
        defer { iterator.stop() }
        while let batch = try iterator.next() {
            let probabilities = SoftmaxCrossEntropy.softmax(model.forward(batch.clips, training: false))
            for (k, video) in batch.videos.enumerated() {
                if batch.failed[k] { failed.insert(video); continue }
                var sum = sums[video] ?? [Double](repeating: 0, count: classes)
                for c in 0..<classes { sum[c] += Double(probabilities[k * classes + c]) }
                sums[video] = sum
                views[video, default: 0] += 1
            }
            progress?.advance()
        }
        progress?.finish()
        var scores: [(path: String, label: Int, probabilities: [Float])] = []
        for video in Set(loader.order(epoch: 0)).sorted() where !failed.contains(video) {
            guard let sum = sums[video] else { continue }
            scores.append((dataset.entries[video].path, dataset.entries[video].label, sum.map { Float($0 / Double(views[video]!)) }))
        }
        let missed = failed.sorted().map { (dataset.entries[$0].path, dataset.entries[$0].label) }
        return score(scores, missed: missed, classes: dataset.classes)
    }

    /// Top-1, top-5, mean class accuracy and per-class accuracy of scored videos; `missed` videos
    /// (no scores) count as wrong.
    public static func score(_ scores: [(path: String, label: Int, probabilities: [Float])], missed: [(path: String, label: Int)] = [],
                             classes: [String]) -> EvaluationResult {
        var hits1 = 0, hits5 = 0
        var perClassTotal = [Int](repeating: 0, count: classes.count), perClassHits = perClassTotal
        for (_, label, probabilities) in scores {
            let ranked = probabilities.indices.sorted { probabilities[$0] != probabilities[$1] ? probabilities[$0] > probabilities[$1] : $0 < $1 }
            if ranked.first == label { hits1 += 1; perClassHits[label] += 1 }
            if ranked.prefix(5).contains(label) { hits5 += 1 }
            perClassTotal[label] += 1
        }
        for (_, label) in missed { perClassTotal[label] += 1 }
        let total = scores.count + missed.count
        let perClass = classes.indices.map { c in (classes[c], perClassTotal[c] > 0 ? Double(perClassHits[c]) / Double(perClassTotal[c]) : nil) }
        let present = perClass.compactMap(\.1)
        return EvaluationResult(top1: total > 0 ? Double(hits1) / Double(total) : 0, top5: total > 0 ? Double(hits5) / Double(total) : 0,
                                meanClassAccuracy: present.isEmpty ? 0 : present.reduce(0, +) / Double(present.count),
                                perClass: perClass, videos: total, failed: missed.count, scores: scores)
    }
}

extension Evaluator {
    /// What nleval does: `checkpoint`'s weights on `split` of `config`'s dataset, every video seen
    /// as `clips` clips x `crops` crops (the config's eval.num_clips and data.test_crop by default).
    /// Videos that cannot be read are reported through `log` and counted as misses. Progress goes
    /// to `progressOutput` (a bar on a terminal, lines otherwise).
    public static func evaluate(checkpoint: Checkpoint, config: Config, split: DataSetup.Split, clips: Int? = nil, crops: Int? = nil,
                                progressOutput: FileHandle? = nil, log: @escaping @Sendable (String) -> Void) throws -> EvaluationResult {
        let model = Recognizer(spec: config.model.spec)
        try checkpoint.load(into: model)
        let dataset = try DataSetup.dataset(config, split: split)
        for problem in dataset.problems.prefix(10) { log(problem) }
        guard dataset.classes.count <= config.model.spec.numClasses else {
            throw CommandError(.data, "\(checkpoint.path): the model has \(config.model.spec.numClasses) classes, the dataset \(dataset.classes.count)")
        }
        let failures = BadVideoLog(file: nil, maxFraction: 1, report: log)
        let loader = DataSetup.evaluationLoader(config, dataset: dataset, clips: clips, crops: crops, badVideos: failures)
        let progress = progressOutput.map { ProgressDisplay(total: loader.batchesPerEpoch, label: "evaluating", unit: "batches", output: $0) }
        return try evaluate(model, loader: loader, progress: progress)
    }
}

extension EvaluationResult {
    /// nleval --json: the metrics, and each class's top-1 accuracy by name (null without videos).
    public func json(extra: [String: Any] = [:]) -> String {
        var perClassAccuracy: [String: Any] = [:]
        for (name, accuracy) in perClass { perClassAccuracy[name] = accuracy ?? NSNull() }
        let values: [String: Any] = ["top1": top1, "top5": top5, "mean_class_accuracy": meanClassAccuracy, "videos": videos,
                                     "failed": failed, "per_class": perClassAccuracy]
        return jsonLine(values.merging(extra) { a, _ in a })
    }

    /// nleval --dump: one line a video, its path, label and the probability of every class.
    public func scoresCSV(classes: [String]) -> String {
        func field(_ s: String) -> String { s.contains(",") || s.contains("\"") ? "\"\(s.replacingOccurrences(of: "\"", with: "\"\""))\"" : s }
        var lines = [(["path", "label"] + classes).map(field).joined(separator: ",")]
        for (path, label, probabilities) in scores {
            lines.append(([field(path), field(classes[label])] + probabilities.map { String(format: "%.6f", $0) }).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The one-line summary nleval prints.
    public var summary: String {
        String(format: "top-1 %.2f%%  top-5 %.2f%%  mean class accuracy %.2f%%  (%d videos, %d failed)",
               top1 * 100, top5 * 100, meanClassAccuracy * 100, videos, failed)
    }
}
