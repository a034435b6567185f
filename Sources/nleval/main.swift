import ArgumentParser
import Foundation
import NLCommands
import NLData
import NLDistributed
import NLLayers
import NLModels
import NLTensor
import NLTrain
import NLVideo

@main
struct NLEval: MatrixCommand {
    static let configuration = CommandConfiguration(
        commandName: "nleval",
        abstract: "Evaluate a checkpoint: top-1, top-5 and mean class accuracy on a split of its dataset.",
        discussion: """
            The config comes from the checkpoint (nltrain writes it into every checkpoint); --config replaces it \
            (for weights converted from mmaction2, which carry none) and --set changes keys of either (a \
            checkpoint from another machine: --set data.root=DIR and the annotation paths). Each video is \
            seen as CLIPS clips evenly spaced x CROPS crops (1 centre crop or 3), and its softmax scores are \
            averaged over the views (mmaction2's average_clips='prob'). Videos that cannot be read are listed and \
            counted as misses. Under mpirun (mpirun -np N nleval ...) each process evaluates a share of the videos \
            and rank 0 reports. The numerical self-check runs first, as for nltrain (nlbench verify). \
            \(ExitStatus.legend(.done, .usage, .data, .internalError, .io, saying: [.internalError: "nothing computes right on this machine"]))
            """)

    @Option(help: "Checkpoint to evaluate (safetensors; or PyTorch .pth, Caffe2 .pkl weights, with --config).")
    var ckpt: String

    @OptionGroup var options: ConfigOptions

    @Option(help: "Dataset split: val or train.")
    var split: DataSetup.Split = .val

    @OptionGroup var views: Views

    @Option(help: ArgumentHelp("Write the metrics and per-class accuracy as JSON to this file.", valueName: "file"))
    var json: String?

    @Option(help: ArgumentHelp("Write every video's class probabilities as CSV to this file.", valueName: "file"))
    var dump: String?

    @Option(
        help: ArgumentHelp(
            "Draw per-class accuracy and the confusion matrix into this .svg (or .html, with the tables).",
            valueName: "file"))
    var report: String?

    @Argument(help: .hidden) var stray: [String] = []

    func validate() throws {
        if let problem = Habits.positionalProblem(stray, checkpointOption: "--ckpt") { throw ValidationError(problem) }
    }

    func run() throws {
        try runCommand("nleval") {
            // Output paths first: a long evaluation must not end in "cannot write", nor overwrite its input.
            try refuseClashes(
                outputs: [("--json", json), ("--dump", dump), ("--report", report)],
                inputs: [("--ckpt", ckpt), ("--config", options.config)])
            if let json { try Files.checkWritable(json, what: "JSON report") }
            if let dump { try Files.checkWritable(dump, what: "scores file") }
            if let report { try Files.checkWritable(report, what: "report") }
            let (checkpoint, resolved) = try options.checkpointAndConfig(ckpt)
            try resolved.require(["data.root", "data.\(split.rawValue)_annotations"], by: "nleval")
            if options.config == nil { try DataSetup.checkPathsOfCheckpointConfig(resolved, split: split) }
            let selfCheck = try SelfCheck.ensure()
            if selfCheck.isNews { Files.emit("nleval: \(selfCheck.line)\n", to: .standardError) }
            guard
                let result = try Evaluator.evaluate(
                    checkpoint: checkpoint, config: resolved, split: split, clips: views.given?.clips,
                    crops: views.given?.crops, progressOutput: .standardError,
                    log: { line in
                        Files.emit("nleval: \(line)\n", to: .standardError)
                    })
            else { return .done }  // another rank of an mpirun job: rank 0 reports
            let viewText = views.text(resolved)
            print("\(ckpt) on \(split.rawValue), \(viewText) views: \(result.summary)")
            if let json {
                try Files.write(
                    result.json(extra: ["checkpoint": ckpt, "split": split.rawValue, "views": viewText]) + "\n",
                    to: json, what: "JSON report")
            }
            if let dump {
                try Files.write(result.scoresCSV(classes: result.perClass.map(\.name)), to: dump, what: "scores file")
            }
            if let report {
                let picture = EvaluationReport(result, title: "\(ckpt) on \(split.rawValue), \(viewText) views")
                try Files.write(picture.document(forPath: report), to: report, what: "report")
            }
            return .done
        }
    }
}
