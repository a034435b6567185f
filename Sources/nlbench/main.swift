import ArgumentParser
import Foundation
import NLBench
import NLCommands
import NLData
import NLDistributed
import NLLayers
import NLModels
import NLTensor
import NLTrain
import NLVideo

@main
struct NLBench: MatrixCommand {
    static let configuration = CommandConfiguration(
        commandName: "nlbench",
        abstract: "Measure the pipeline's speed: the training step, decoding, the data loader and the whole pipeline.",
        subcommands: [Step.self, Decode.self, Loader.self, Pipeline.self, Verify.self])
}

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode training clips as the loader does and report clips per second.",
        discussion: """
            Each clip opens a fresh reader on the next file, decodes clip-len frames at frame-interval from a random \
            start, RGB at short-side, and closes it; --workers readers run at once (one decoder thread each). \
            Prints one line: clips/s, seconds, peak RSS. scripts/data/make_bench_videos.sh makes the benchmark's videos; \
            scripts/bench/bench_decode_python.py measures PyAV and decord on the same files.
            """)

    @Argument(help: "Video files.")
    var files: [String]

    @Option(help: "Clips to read.")
    var clips = 200

    @Option(help: "Readers at once.")
    var workers = 1

    @Option(help: "Frames per clip.")
    var clipLen = 32

    @Option(help: "Frames between sampled frames.")
    var frameInterval = 2

    @Option(help: "Short side of the returned frames.")
    var shortSide = 256

    func run() throws {
        var benchmark = DecodeBenchmark(files: files)
        (benchmark.clips, benchmark.workers, benchmark.clipLength, benchmark.frameInterval, benchmark.shortSide) =
            (clips, max(1, workers), clipLen, frameInterval, shortSide)
        try runCommand("nlbench") {
            let result = try benchmark.run()
            print(
                String(
                    format:
                        "nlbench decode workers=%d clip_len=%d interval=%d short_side=%d: %d clips in %.2f s, %.1f clips/s, peak RSS %.0f MiB, own memory at the end %.1f MiB; %@",
                    workers, clipLen, frameInterval, shortSide, result.clips, result.seconds, result.clipsPerSecond,
                    ProcessMemory.peakMiB,
                    ProcessMemory.anonymousMiB, machineDescription))
            return .done
        }
    }
}

struct Loader: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make training batches of a config's [data] as nltrain's loader does and report clips per second.",
        discussion: """
            Decoding, scale jitter, crops, flips and normalising, on data.workers threads, with nothing consuming \
            the batches: the most the loader can feed the training step. Prints one line: clips/s, seconds, peak RSS.
            """)

    @OptionGroup var options: ConfigOptions

    @Option(help: "Batches to make.")
    var batches = 20

    func validate() throws {
        if options.config == nil { throw ValidationError("give --config FILE") }
    }

    func run() throws {
        try runCommand("nlbench") {
            var benchmark = LoaderBenchmark(config: try options.resolve())
            benchmark.batches = batches
            let result = try benchmark.run()
            let d = benchmark.config.data
            print(
                String(
                    format:
                        "nlbench loader workers=%d batch=%d clip=%dx%d crop=%d: %d clips in %.2f s, %.1f clips/s, peak RSS %.0f MiB; %@",
                    d.workers, benchmark.config.train.batchSize, d.clipLength, d.frameInterval, d.cropSize,
                    result.clips,
                    result.seconds, result.clipsPerSecond, ProcessMemory.peakMiB, machineDescription))
            return .done
        }
    }
}

extension Precision: ExpressibleByArgument {}

struct Step: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time nltrain's training step on a random clip, as scripts/bench/pytorch_step.py times mmaction2's.",
        discussion: """
            The step is nltrain's own (forward, loss, backward, gradient clipping, SGD with momentum and weight decay at \
            the scheduled rate), with [train]'s settings from --config and --set (default: i3d_nl's). One warm-up step, \
            then --steps timed ones; prints one line in pytorch_step.py's form (train-step GFLOP, median seconds, \
            GFLOP/s, clips/s, peak RSS) with the machine (CPU, vector ISA, OpenBLAS and its kernel, threads) and, with \
            --layers, OpenBLAS's sgemm share, the machine's sgemm rate (2048^3) and the step's share of it, the sgemm shapes that took longest (as OpenBLAS gets them, after the \
            split over threads) and each layer's forward and backward milliseconds. NL_THREADS sets the \
            threads (else OMP_NUM_THREADS; default: every core this process may use). Under mpirun each rank steps and the gradients are averaged as in training; \
            rank 0 prints, with the allreduce's time.
            """)

    @Option(help: "Clips per step.")
    var batch = 2

    @Option(help: "Frames per clip.")
    var frames = 8

    @Option(help: "Height and width of the clip.")
    var size = 112

    @Option(help: "Model: \(ModelSpec.names.joined(separator: ", ")).")
    var model = "nl_i3d_r50"

    @OptionGroup var options: ConfigOptions

    @Option(help: "Timed steps.")
    var steps = 3

    @Option(
        help:
            "Arithmetic of the convolutions, as [train] precision: fp32, or bf16 (mixed precision; needs AVX512_BF16 or AMX)."
    )
    var precision: Precision?

    @Flag(help: "Print sgemm's share and shapes, and each layer's forward and backward time.")
    var layers = false

    func run() throws {
        try runCommand("nlbench") {
            let config = try Config(path: options.config, overrides: ["model.name=\(model)"] + options.overrides)
            var benchmark = StepBenchmark(spec: config.model.spec)
            benchmark.train = config.train
            if let precision { benchmark.train.precision = precision }
            (benchmark.batch, benchmark.frames, benchmark.size, benchmark.steps) = (batch, frames, size, max(1, steps))
            let r = try benchmark.run()
            guard r.reports else { return .done }
            print(
                String(
                    format:
                        "nlbench %@ %@ threads=%d batch=%d frames=%d size=%d: train-step %.1f GFLOP, median %.3f s, %.1f GFLOP/s, %.2f clips/s, peak RSS %.0f MiB; %@",
                    model, benchmark.train.precision.rawValue, Parallel.threadCount, batch, frames, size, r.flops / 1e9,
                    r.medianSeconds, r.gflopsPerSecond,
                    Double(batch) / r.medianSeconds, ProcessMemory.peakMiB, machineDescription)
                    + (r.allreduceSeconds.map {
                        String(
                            format: "; gradient allreduce %.3f s (%.1f%% of the step)", $0, $0 / r.medianSeconds * 100)
                    } ?? ""))
            guard layers else { return .done }
            let threadSeconds = r.medianSeconds * Double(Parallel.threadCount)
            print(
                String(
                    format:
                        "sgemm: %.1f GFLOP a step at %.1f GFLOP/s a thread, %.0f%% of the step's thread-time (%d threads x %.3f s)",
                    r.sgemm.flops / 1e9, r.sgemm.flops / r.sgemm.threadSeconds / 1e9,
                    r.sgemm.threadSeconds / threadSeconds * 100,
                    Parallel.threadCount, r.medianSeconds))
            let machine = StepBenchmark.sgemmRate()
            print(
                String(
                    format:
                        "the machine's sgemm: %.1f GFLOP/s on %d threads (2048 x 2048 x 2048); the step runs at %.0f%% of it%@",
                    machine / 1e9, Parallel.threadCount, r.gflopsPerSecond * 1e9 / machine * 100,
                    benchmark.train.precision == .bf16
                        ? " (a float32 rate: bf16's convolutions run on bfloat16 instructions, beyond it)" : ""))
            print("the 12 sgemm shapes (M x N x K) threads spent longest in, a step:")
            for (shape, use) in r.sgemm.shapes.sorted(by: { $0.value.threadSeconds > $1.value.threadSeconds }).prefix(
                12)
            {
                print(
                    String(
                        format: "  %@ %5d calls %8.1f ms %6.1f GFLOP/s a thread",
                        shape.description.padding(toLength: 22, withPad: " ", startingAt: 0),
                        use.calls, use.threadSeconds * 1000, shape.flops * Double(use.calls) / use.threadSeconds / 1e9))
            }
            let total = r.layers.reduce(0) { $0 + $1.forward + $1.backward }
            func padded(_ s: String) -> String { s.padding(toLength: 24, withPad: " ", startingAt: 0) }
            print(padded("layer") + "  forward ms  backward ms   share")
            for (name, forward, backward) in r.layers {
                print(
                    padded(name)
                        + String(
                            format: "%12.1f %12.1f %7.1f%%", forward * 1000, backward * 1000,
                            (forward + backward) / total * 100))
            }
            return .done
        }
    }
}

struct Pipeline: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Train a config's model on its data as nltrain does, writing nothing, and report clips/s and the time spent waiting for data.",
        discussion: """
            The loader's workers decode ahead while the model steps; after a warm-up iteration (the loader's start), \
            --iterations iterations are timed. Prints one line: clips/s end to end and the share of the time the \
            step waited for a batch.
            """)

    @OptionGroup var options: ConfigOptions

    @Option(help: "Timed iterations.")
    var iterations = 10

    func validate() throws {
        if options.config == nil { throw ValidationError("give --config FILE") }
    }

    func run() throws {
        try runCommand("nlbench") {
            var benchmark = PipelineBenchmark(config: try options.resolve())
            benchmark.iterations = iterations
            let r = try benchmark.run()
            let c = benchmark.config
            print(
                String(
                    format:
                        "nlbench pipeline %@ workers=%d batch=%d clip=%dx%d crop=%d: %d clips in %.2f s, %.2f clips/s, waiting for data %.1f%% (first batch %.2f s), peak RSS %.0f MiB; %@",
                    c.model.name, c.data.workers, c.train.batchSize, c.data.clipLength, c.data.frameInterval,
                    c.data.cropSize,
                    r.clips, r.seconds, r.clipsPerSecond, r.waitShare * 100, r.firstBatchSeconds, ProcessMemory.peakMiB,
                    machineDescription))
            return .done
        }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the numerical self-check on this machine now and print its verdict.",
        discussion: """
            NL I3D R50 forward and backward in every non-local mode and with context blocks, on OpenBLAS's kernel and \
            the threads the commands use (NL_THREADS, else OMP_NUM_THREADS, else every core this process may use): \
            every matrix product against float64 on the same operands, and the logits against one thread's. nltrain \
            and nleval run it before their first run on a configuration and keep the verdict; this runs it again \
            and records the verdict. \(ExitStatus.legend(.done, .internalError, saying: [.done: "passed", .internalError: "failed"]))
            """)

    func run() throws {
        try runCommand("nlbench") {
            print("nlbench verify: \(machineDescription)")
            let result = SelfCheck.run()
            print("self-check of \(result.configuration): \(result.summary)")
            if let problem = SelfCheck.keep(result) { print("the verdict is not kept: \(problem)") }
            for line in ConvolutionChoices.thisMachine {
                print("bfloat16 convolutions chosen on this machine for \(line)")
            }
            return result.passed ? .done : .internalError
        }
    }
}
