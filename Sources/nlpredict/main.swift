import ArgumentParser
import Foundation
import NLCommands
import NLModels
import NLTensor
import NLTrain

@main
struct NLPredict: MatrixCommand {
    static let configuration = CommandConfiguration(
        commandName: "nlpredict",
        abstract:
            "Classify videos with a checkpoint: the most probable classes of each video, or of each window of a long one.",
        discussion: """
            Each video is seen as nleval sees one: CLIPS clips evenly spaced x CROPS crops, the softmax probabilities \
            averaged over the views; videos are batched together. Folders are walked for videos (the endings the \
            loader reads). The model and its settings come from the checkpoint (nltrain writes both, and the class \
            names, into every checkpoint); --config replaces them (weights converted from another framework carry \
            none) and --set changes keys of either. Class names: --classes (one a line, line i is class i), else the \
            checkpoint's, else the config's classes file, else "class N". With --window, each video is cut into \
            windows of that many seconds every --stride seconds, and each window is classified; --timeline draws \
            them. The numerical self-check runs first, as for nltrain (nlbench verify). \
            \(ExitStatus.legend(.done, .usage, .data, .internalError, .io, saying: [.done: "every video predicted", .data: "some video could not be read (each named; the others are printed)", .internalError: "nothing computes right on this machine"]))
            """)

    @Option(
        help: "Checkpoint whose model classifies (safetensors; or PyTorch .pth, Caffe2 .pkl weights, with --config).")
    var ckpt: String

    @OptionGroup var options: ConfigOptions

    @Option(help: ArgumentHelp("Class names, one a line (line i is class i).", valueName: "file"))
    var classes: String?

    @Option(help: "Classes printed for each video or window.")
    var topK = 5

    @OptionGroup var views: Views

    @Flag(
        help:
            "Print one JSON object a line: {\"video\", (\"start\", \"end\",) \"top\": [{\"label\", \"index\", \"score\"}]}."
    )
    var json = false

    @Option(help: ArgumentHelp("Classify windows of this many seconds instead of whole videos.", valueName: "seconds"))
    var window: Double?

    @Option(help: ArgumentHelp("Seconds between the starts of windows (default: --window).", valueName: "seconds"))
    var stride: Double?

    @Option(
        help: ArgumentHelp(
            "Draw the windows of the video into this .svg (with --window, one video).", valueName: "file"))
    var timeline: String?

    @Argument(
        parsing: .allUnrecognized, help: ArgumentHelp("Videos, or folders of videos.", valueName: "video-or-folder"))
    var inputs: [String] = []

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give one or more videos or folders of videos") }
        if topK < 1 { throw ValidationError("--top-k takes a positive number") }
        if let window, !(window > 0 && window.isFinite) {
            throw ValidationError("--window takes a positive number of seconds")
        }
        if let stride, !(stride > 0 && stride.isFinite) {
            throw ValidationError("--stride takes a positive number of seconds")
        }
        if stride != nil && window == nil { throw ValidationError("--stride goes with --window") }
        if timeline != nil && window == nil { throw ValidationError("--timeline draws the windows of --window") }
    }

    func run() throws {
        try runCommand("nlpredict") {
            try refuseClashes(
                outputs: [("--timeline", timeline)],
                inputs: [("--ckpt", ckpt), ("--config", options.config), ("--classes", classes)]
                    + inputs.map { ("a video", $0) })
            if let timeline { try Files.checkWritable(timeline, what: "timeline") }
            let videos = Predictor.videos(in: inputs)
            guard !videos.isEmpty else { throw UsageError("no video in \(inputs.joined(separator: ", "))") }
            if timeline != nil && videos.count > 1 {
                throw UsageError("--timeline draws one video's windows; \(videos.count) videos were given")
            }
            let (checkpoint, config) = try options.checkpointAndConfig(ckpt)
            let names = try Predictor.classNames(file: classes, checkpoint: checkpoint, config: config)
            let selfCheck = try SelfCheck.ensure()
            if selfCheck.isNews { Files.emit("nlpredict: \(selfCheck.line)\n", to: .standardError) }
            let model = try config.makeModel()
            try checkpoint.load(into: model)
            let outcome = try Predictor.predict(
                model, config: config, videos: videos, window: window.map { ($0, stride ?? $0) },
                clips: views.given?.clips,
                crops: views.given?.crops,
                progress: { total in
                    isatty(FileHandle.standardError.fileDescriptor) != 0
                        ? ProgressDisplay(total: total, label: "predicting", unit: "batches") : nil
                },
                log: { Files.emit("nlpredict: \($0)\n", to: .standardError) })
            for prediction in outcome.predictions {
                Files.emit(prediction.line(classes: names, top: topK, json: json) + "\n", to: .standardOutput)
            }
            for (video, error) in outcome.failures {
                Files.emit(
                    "nlpredict: " + (error.hasPrefix(video) ? error : "\(video): \(error)") + "\n", to: .standardError)
            }
            if let timeline, !outcome.predictions.isEmpty {
                let picture = PredictionTimeline.svg(video: videos[0], predictions: outcome.predictions, classes: names)
                try Files.write(picture, to: timeline, what: "timeline")
            }
            return outcome.failures.isEmpty ? .done : .data
        }
    }
}
