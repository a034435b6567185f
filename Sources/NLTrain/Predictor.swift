import Foundation
import NLData
import NLModels
import NLTensor
import NLVideo

/// nlpredict: the classes of videos, or of windows of a long one, by a checkpoint's model. Each
/// video (or window) is seen as nleval sees one, through the same evaluation loader: clips evenly
/// spaced times crops, softmax probabilities averaged over the views (mmaction2's
/// average_clips='prob'), videos batched together.
public enum Predictor {
    /// A span of a video, in seconds and in frames.
    public struct Window: Sendable, Equatable {
        public let start: Double, end: Double
        public let frames: Range<Int>
    }

    /// What the model says of one video, or of one window of it.
    public struct Prediction: Sendable {
        public let video: String
        public let window: Window?
        /// Each class's probability, averaged over the views.
        public let probabilities: [Float]

        /// The `k` most probable classes, best first (a tie goes to the lower index).
        public func top(_ k: Int) -> [(index: Int, score: Float)] {
            Evaluator.classesByScore(probabilities).prefix(k).map { ($0, probabilities[$0]) }
        }

        /// nlpredict's line for it: "video.mp4 0.0-8.0 s: abseiling 0.912, ..." or, with `json`,
        /// {"video", ("start", "end",) "top": [{"label", "index", "score"}]}.
        public func line(classes: [String], top k: Int, json: Bool) -> String {
            let best = top(k)
            guard json else {
                let span = window.map { String(format: " %.1f-%.1f s", $0.start, $0.end) } ?? ""
                return "\(video)\(span): "
                    + best.map { classes[$0.index] + String(format: " %.3f", $0.score) }.joined(separator: ", ")
            }
            var object: [String: Any] = [
                "video": video,
                "top": best.map {
                    ["label": classes[$0.index], "index": $0.index, "score": Double($0.score)] as [String: Any]
                },
            ]
            if let window { (object["start"], object["end"]) = (window.start, window.end) }
            return jsonLine(object)
        }
    }

    /// The predictions, in the order of the videos and their windows, and the videos that could
    /// not be read, each with why.
    public struct Outcome: Sendable {
        public var predictions: [Prediction] = []
        public var failures: [(video: String, error: String)] = []
    }

    /// The video files `paths` name, in order: files as given, folders walked (hidden files and
    /// folders passed over, links to folders followed as the loader follows them, each folder
    /// once) for the endings the loader reads, sorted. A path that is not there is kept, to fail
    /// by name.
    public static func videos(in paths: [String]) -> [String] {
        var walked = Set<[UInt64]>()  // (device, inode): a link back up is not walked again
        func walk(_ folder: String) -> [String] {
            var status = stat()
            guard stat(folder, &status) == 0, walked.insert([UInt64(status.st_dev), UInt64(status.st_ino)]).inserted
            else { return [] }
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
            return names.filter { !$0.hasPrefix(".") }.flatMap { name -> [String] in
                let path = (folder as NSString).appendingPathComponent(name)
                var isFolder: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { return [] }
                if isFolder.boolValue { return walk(path) }
                return Annotations.videoExtensions.contains((name as NSString).pathExtension.lowercased()) ? [path] : []
            }
        }
        return paths.flatMap { path -> [String] in
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue else {
                return [path]
            }
            return walk(path)
        }
    }

    /// The windows of `length` seconds every `stride` seconds from the start of a video of
    /// `duration` seconds whose frames show at `timestamps` (the last window may be shorter);
    /// those that hold no frame are left out.
    public static func windows(length: Double, stride: Double, duration: Double, timestamps: [Double]) -> [Window] {
        let end = max(duration, timestamps.last ?? 0)
        var windows: [Window] = []
        var start = 0.0
        repeat {
            let first = timestamps.firstIndex { $0 >= start } ?? timestamps.count
            let last = timestamps.firstIndex { $0 >= start + length } ?? timestamps.count
            if first < last {
                windows.append(Window(start: start, end: min(start + length, end), frames: first..<last))
            }
            start += stride
        } while start < end
        return windows
    }

    /// Runs `model` over `videos` (or their windows) with `config`'s evaluation settings and
    /// `clips` x `crops` views each (nil: the config's). `progress` counts batches; `log` hears
    /// what runs in bf16 precision.
    public static func predict(
        _ model: Recognizer, config: Config, videos: [String], window: (length: Double, stride: Double)?,
        clips: Int?, crops: Int?, progress: (Int) -> ProgressDisplay?, log: (String) -> Void
    ) throws -> Outcome {
        var outcome = Outcome()
        var entries: [VideoEntry] = [], spans: [Window?] = []
        for video in videos {
            guard let window else {
                entries.append(VideoEntry(path: video, label: 0, source: video))
                spans.append(nil)
                continue
            }
            do {
                let info = try VideoReader(path: video, threads: 1).info
                for span in windows(
                    length: window.length, stride: window.stride, duration: info.duration, timestamps: info.timestamps)
                {
                    entries.append(VideoEntry(path: video, label: 0, source: video, frames: span.frames))
                    spans.append(span)
                }
            } catch {
                outcome.failures.append((video, "\(error)"))
            }
        }
        guard !entries.isEmpty else { return outcome }
        let dataset = Dataset(entries: entries, classes: ["0"], missing: [], malformed: [])
        let failures = BadVideoLog(file: nil, maxFraction: 1, action: "naming it", report: { _ in })
        let loader = try DataSetup.evaluationLoader(
            config, dataset: dataset, clips: clips, crops: crops, badVideos: failures)
        try DataSetup.prepare(model, toEvaluate: loader, config: config, log: log)
        let scores = try Evaluator.videoScores(model, loader: loader, progress: progress(loader.batchesPerEpoch))
        var failed = Set<String>()
        for (i, entry) in entries.enumerated() {
            if let error = scores.failed[i] {
                if failed.insert(entry.path).inserted { outcome.failures.append((entry.path, error)) }
                continue
            }
            let probabilities = scores.sums[i]!.map { Float($0 / Double(scores.views[i]!)) }
            outcome.predictions.append(Prediction(video: entry.path, window: spans[i], probabilities: probabilities))
        }
        // Videos in the order given, failures where they stand.
        outcome.failures.sort { a, b in (videos.firstIndex(of: a.video) ?? 0) < (videos.firstIndex(of: b.video) ?? 0) }
        return outcome
    }

    /// The class names for scores: `file` (one a line; line i is class i) when given, else those
    /// the checkpoint carries, else the config's classes file when it is on this machine, else
    /// "class N". Fails (64) when a file's names do not match the model's classes.
    public static func classNames(file: String?, checkpoint: Checkpoint?, config: Config) throws -> [String] {
        let count = config.model.spec.numClasses
        var names: [String]?
        if let file {
            names = try TextFile.lines(file, what: "classes file").map { $0.text.trimmingCharacters(in: .whitespaces) }
            guard names!.count == count else {
                throw UsageError(
                    "\(file): \(names!.count) class names for the model's \(count) classes (model.num_classes)")
            }
        } else if let carried = checkpoint?.classes, carried.count <= count {
            names = carried
        } else if !config.data.classes.isEmpty, FileManager.default.fileExists(atPath: config.data.classes) {
            names = try? TextFile.lines(config.data.classes, what: "classes file").map {
                $0.text.trimmingCharacters(in: .whitespaces)
            }
        }
        let known = names ?? []
        return (0..<count).map { $0 < known.count ? known[$0] : "class \($0)" }
    }
}
