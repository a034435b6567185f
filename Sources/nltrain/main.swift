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
struct NLTrainCommand: MatrixCommand {
    /// The stopping signals are held from the start of main until their handlers are in
    /// place: a SIGTERM in the first milliseconds stops the run with 75 too, where it killed it
    /// (143).
    static func main() {
        StopSignal.hold()
        BLASKernel.useTheBestKernel()
        StopSignal.install()
        main(nil)
    }

    static let configuration = CommandConfiguration(
        commandName: "nltrain",
        abstract: "Train a Non-local I3D network from a plain-text config.",
        discussion: """
            Trains [model] on [data] with [train]'s SGD and schedule, writing checkpoints, train.log, metrics.jsonl \
            and bad_videos.txt into [train] work_dir. A work directory with a checkpoint resumes by itself, bit for \
            bit; a finished one exits 0 at once; a second run on it exits 75. --max-time and SIGTERM/SIGINT/SIGHUP/SIGUSR1 \
            stop after a checkpoint with exit 75: run the same command again to continue (cron: see the README). Under \
            mpirun (mpirun -np N nltrain ...) each process trains on its share of every batch (batch_size is per \
            process), gradients are averaged over the processes, and rank 0 writes the work directory. Before the \
            first run on a configuration (CPU, OpenBLAS kernel, threads) a numerical self-check of a few seconds holds \
            OpenBLAS's products to float64 and falls back to one that computes right if it must (nlbench verify). \
            \(ExitStatus.legend(.done, .usage, .data, .internalError, .io, .notFinished, saying: [.internalError: "internal error (a diverged run, or nothing computes right)"])) \
            Every key: configs/README.md.
            """)

    @OptionGroup var options: ConfigOptions

    @Option(help: "Resume from this checkpoint instead of the work directory's latest.")
    var resume: String?

    @Option(
        name: .customLong("init"),
        help:
            "Start from these weights (model only: fine-tuning, or `nlmodel inflate` output; safetensors, PyTorch .pth or Caffe2 .pkl), instead of [model] pretrained."
    )
    var initialWeights: String?

    @Option(
        help: ArgumentHelp(
            "Stop after a checkpoint at the first iteration past this time (90s, 30m, 2h, 1h30m).",
            valueName: "duration"))
    var maxTime: String?

    @Flag(
        help:
            "Set the work directory's checkpoints aside (into previous-DATE/, nothing is deleted) and train from the start."
    )
    var startOver = false

    @Flag(help: "Print the resolved config, every key with its value, and exit.")
    var printConfig = false

    @Flag(
        help:
            "Measure, without training or writing anything, what the run will take here: the peak memory and time of a step, an epoch's and the run's time, the largest batch_size that fits (a few steps are run)."
    )
    var plan = false

    @Flag(help: "With --plan: print the plan as one JSON object.")
    var json = false

    @Argument(help: .hidden) var stray: [String] = []

    func validate() throws {
        if let problem = Habits.positionalProblem(stray, checkpointOption: "--init (or --resume)") {
            throw ValidationError(problem)
        }
        if options.config == nil && !printConfig { throw ValidationError("give --config FILE") }
        if let maxTime, parseDuration(maxTime) == nil {
            throw ValidationError("--max-time takes a duration such as 90s, 30m, 2h or 1h30m")
        }
        if resume != nil && initialWeights != nil { throw ValidationError("give --resume or --init, not both") }
        if resume != nil && startOver { throw ValidationError("give --resume or --start-over, not both") }
        if json && !plan { throw ValidationError("--json is for --plan") }
    }

    func run() throws {
        try runCommand("nltrain") {
            let resolved = try options.resolve()
            if printConfig {
                print(resolved.text, terminator: "")
                return .done
            }
            var training = Trainer.Options()
            (training.resume, training.initialWeights, training.startOver) = (resume, initialWeights, startOver)
            training.maxTime = maxTime.flatMap(parseDuration)
            training.selfCheck = try SelfCheck.ensure().line
            if plan {
                let trainer = Trainer(config: resolved, options: training, output: FileHandle.standardError)
                let measured = try trainer.plan()
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = .sortedKeys
                    print(String(decoding: try encoder.encode(measured), as: UTF8.self))
                } else {
                    print(
                        "plan of \(options.config ?? "the config") on \(machineDescription):\n\(measured.description)")
                }
                return .done
            }
            return try Trainer(config: resolved, options: training).run()
        }
    }
}
