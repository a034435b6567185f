import ArgumentParser
import Foundation
import NLTrain

@main
struct NLBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nlbench",
        abstract: "Measure the pipeline's speed: decoding (and, as they land, the training step and the whole pipeline).",
        subcommands: [Decode.self])
}

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode training clips as the loader does and report clips per second.",
        discussion: """
            Each clip opens a fresh reader on the next file, decodes clip-len frames at frame-interval from a random \
            start, RGB at short-side, and closes it; --workers readers run at once (one decoder thread each). \
            Prints one line: clips/s, seconds, peak RSS. scripts/make_bench_videos.sh makes the benchmark's videos; \
            scripts/bench_decode_python.py measures PyAV and decord on the same files.
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
        do {
            let result = try benchmark.run()
            print(String(format: "nlbench decode workers=%d clip_len=%d interval=%d short_side=%d: %d clips in %.2f s, %.1f clips/s, peak RSS %.0f MiB",
                         workers, clipLen, frameInterval, shortSide, result.clips, result.seconds, result.clipsPerSecond, peakResidentMiB))
        } catch {
            exitReporting(error, command: "nlbench")
        }
    }
}
