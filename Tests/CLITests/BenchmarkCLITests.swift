import Foundation
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLDistributed
import NLLayers
import NLModels
import NLTensor
import NLVideo

/// nlbench and the scripts that measure the peers beside it.
struct BenchmarkCLITests {
    /// scripts/bench/compare_step_with_pytorch.sh's plumbing, with a stand-in for PyTorch's step
    /// (the real one needs PyTorch, which CI never installs): the machine line whole, and a row for
    /// the shape with both sides' seconds, the ratio and the rounds' own ratios (here the stand-in's
    /// 0.5 s over nlbench's, in each of 2 rounds); a shape that is not three positive integers, or
    /// ROUNDS that is not a positive integer, is refused before anything runs; a yardstick that
    /// fails (PyTorch missing) stops it with what the yardstick said.
    @Test func theStepComparisonScriptRuns() throws {
        let yardstick = "\(scratchDirectory("files", made: true))/yardstick.py"
        try """
        print("pytorch 0.0 threads=2 batch=1 frames=8 size=64: train-step 1.5 GFLOP, median 0.500 s, 3.0 GFLOP/s, 2.00 clips/s, peak RSS 100 MiB")

        """.write(toFile: yardstick, atomically: true, encoding: .utf8)
        let script = "\(repositoryRoot)/scripts/bench/compare_step_with_pytorch.sh"
        let r = try run(script, ["2"], environment: ["YARDSTICK": yardstick, "SHAPES": "1 8 64", "PRECISIONS": "fp32"])
        #expect(r.status == 0, "\(r.stderr)")
        let cpu = CPUFeatures.current
        #expect(
            r.stdout.contains("machine: \(cpu.model) (\(cpu.vectorISA)), OpenBLAS")
                && r.stdout.contains(" threads, built for "), "\(r.stdout)")
        let row = r.stdout.split(separator: "\n").first { $0.hasPrefix("batch 1x8x64 fp32: 1.5 GFLOP; nlbench ") }
        let ratios = row.flatMap { $0.firstMatch(of: /: ([0-9.]+)x \(rounds ([0-9.]+)-([0-9.]+)x\)$/) }
        #expect(row?.contains("pytorch 0.500 s (3.0 GFLOP/s, 100 MiB): ") == true && ratios != nil, "\(r.stdout)")
        if let ratios, let low = Double(ratios.2), let high = Double(ratios.3), let ratio = Double(ratios.1) {
            #expect(low <= ratio + 0.01 && ratio <= high + 0.01 && low > 0, "\(r.stdout)")
        }
        #expect(r.stderr.contains("1x8x64 fp32 round 2/2: nlbench ") && r.stderr.contains(" min left"), "\(r.stderr)")
        // Both precisions where the CPU has bfloat16: a row each, and nlbench's bf16 over its fp32.
        if Precision.bf16.unavailable == nil {
            let both = try run(
                script, ["1"], environment: ["YARDSTICK": yardstick, "SHAPES": "1 8 64", "PRECISIONS": "fp32 bf16"])
            #expect(both.status == 0, "\(both.stderr)")
            for prefix in [
                "batch 1x8x64 fp32: 1.5 GFLOP; nlbench ", "batch 1x8x64 bf16: 1.5 GFLOP; nlbench ",
                "batch 1x8x64: nlbench bf16 ",
            ] {
                #expect(both.stdout.contains("\n" + prefix), "\(prefix) in \(both.stdout)")
            }
        }
        let precision = try run(script, ["1"], environment: ["YARDSTICK": yardstick, "PRECISIONS": "fp16"])
        #expect(precision.status == 64 && precision.stderr.contains("PRECISIONS: 'fp16' is not fp32 or bf16"))
        let bad = try run(
            script, ["1"], environment: ["YARDSTICK": yardstick, "SHAPES": "1 8 64,2 x 3", "PRECISIONS": "fp32"])
        #expect(bad.status == 64 && bad.stderr.contains("SHAPES: '2 x 3' is not 'batch frames size'"), "\(bad.stderr)")
        let noRounds = try run(
            script, ["0"], environment: ["YARDSTICK": yardstick, "SHAPES": "1 8 64", "PRECISIONS": "fp32"])
        #expect(
            noRounds.status == 64 && noRounds.stderr.contains("ROUNDS: '0' is not a positive integer"),
            "\(noRounds.stderr)")
        let failing = try failingScript(saying: "No module named torch")
        let failed = try run(
            script, ["1"], environment: ["YARDSTICK": failing, "SHAPES": "1 8 64", "PRECISIONS": "fp32"])
        #expect(
            failed.status == 1
                && failed.stderr.contains(
                    "\(failing) --batch 1 --frames 8 --size 64 --precision fp32 failed:\nNo module named torch"),
            "\(failed.stderr)")
    }

    /// scripts/bench/compare_precisions_on_demo.sh on the small synthetic dataset, one epoch a run:
    /// on a CPU with bfloat16 the machine's lines, a row for each seed with both precisions' best
    /// and final top-1 (one validation: the same) and times, the means of the rows, and a progress
    /// line a run; elsewhere the refusal (64). SEEDS that is not a positive integer and a run that
    /// fails stop it, saying why.
    @Test func theDemoPrecisionComparisonScriptRuns() throws {
        let script = "\(repositoryRoot)/scripts/bench/compare_precisions_on_demo.sh"
        let data = syntheticDatasetDirectory
        let small = [
            "data.root=\(data)", "data.train_annotations=\(data)/train.csv", "data.val_annotations=\(data)/val.csv",
            "data.classes=\(data)/classes.txt", "data.clip_len=4", "train.epochs=1", "train.eval_every=1",
        ].flatMap { ["--set", $0] }
        let environment = ["XDG_CACHE_HOME": scratchDirectory("cache", made: true)]
        let noSeeds = try run(script, ["0"] + small, environment: environment)
        #expect(noSeeds.status == 64 && noSeeds.stderr.contains("SEEDS: '0' is not a positive integer"))
        let r = try run(script, ["2"] + small, environment: environment)
        guard Precision.bf16.unavailable == nil else {
            #expect(r.status == 64 && r.stderr.contains("neither AVX512_BF16 nor AMX: bf16 cannot run here"))
            return
        }
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 5 && lines[0].hasPrefix("Model name: "), "\(r.stdout)")
        func percents(_ line: String) -> [Double] {
            line.matches(of: #/([0-9]+\.[0-9]{2})%/#).compactMap { Double($0.1) }
        }
        var sums = [Double](repeating: 0, count: 4)
        for seed in 0..<2 {
            let row = try #require(lines.first { $0.hasPrefix("seed \(seed): fp32 best ") }, "\(r.stdout)")
            let values = percents(row)  // fp32 best, final; bf16 best, final
            #expect(
                values.count == 4 && values[0] == values[1] && values[2] == values[3] && row.contains("; bf16 best ")
                    && row.matches(of: #/ in [0-9]+:[0-9]{2}/#).count == 2, "\(row)")
            if values.count == 4 { sums = zip(sums, values).map { $0 + $1 } }
            #expect(
                r.stderr.contains("seed \(seed) fp32: best ") && r.stderr.contains("seed \(seed) bf16: best "),
                "\(r.stderr)")
        }
        #expect(r.stderr.contains(" min left"), "\(r.stderr)")
        let mean = try #require(lines.last)
        let means = percents(mean)
        #expect(mean.hasPrefix("mean over 2 seeds: fp32 best ") && means.count == 4, "\(mean)")
        if means.count == 4 {
            #expect(zip(means, sums).allSatisfy { abs($0 - $1 / 2) < 0.006 }, "\(mean) from \(r.stdout)")
        }
        let failed = try run(script, ["1", "--set", "train.batch_size=0"] + small, environment: environment)
        #expect(
            failed.status == 1 && failed.stderr.contains("nltrain at seed 0 in fp32 failed:")
                && failed.stderr.contains("batch_size"), "\(failed.stderr)")
    }

    /// scripts/bench/compare_decode_with_python.sh's plumbing on the benchmark's own videos, with a
    /// stand-in for the Python decoders (CI installs none) that reports 2 and 4 clips/s: a row for
    /// nlvideo and for each peer with a figure in each of the four cells, the ratio row over the
    /// faster peer, and a progress line a cell on stderr; a peer script that fails stops it with
    /// what that script said, and CLIPS that is not a positive integer is refused.
    @Test func theDecodeComparisonScriptRuns() throws {
        let peers = "\(scratchDirectory("files", made: true))/peers.py"
        try """
        import sys
        workers = sys.argv[sys.argv.index("--workers") + 1]
        for name, speed in (("PyAV, seek + swscale to size", 2.0), ("decord, size given to its reader", 4.0)):
            print(f"{name} workers={workers} clip_len=32 interval=2 short_side=256: 2 clips in 1.00 s, {speed} clips/s")

        """.write(toFile: peers, atomically: true, encoding: .utf8)
        let script = "\(repositoryRoot)/scripts/bench/compare_decode_with_python.sh"
        let r = try run(script, ["1", "2"], environment: ["PEERS": peers])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = r.stdout.split(separator: "\n").map {
            $0.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        #expect(
            rows.contains([
                "clips/s", "340x256, 1 reader", "340x256, 2 readers", "640x360, 1 reader", "640x360, 2 readers",
            ]), "\(r.stdout)")
        #expect(rows.contains(["PyAV, seek + swscale to size", "2.0", "2.0", "2.0", "2.0"]), "\(r.stdout)")
        let nlvideo = rows.first { $0.first == "nlvideo" }?.dropFirst().compactMap { Double($0) } ?? []
        let ratios =
            rows.first { $0.first == "nlvideo / the fastest other" }?.dropFirst().compactMap { Double($0.dropLast()) }
            ?? []
        #expect(nlvideo.count == 4 && ratios.count == 4 && nlvideo.allSatisfy { $0 > 0 }, "\(r.stdout)")
        for (speed, ratio) in zip(nlvideo, ratios) { #expect(abs(speed / 4 - ratio) < 0.01, "\(r.stdout)") }
        #expect(
            r.stderr.contains("640x360, 2 readers, round 1/1: nlvideo ") && r.stderr.contains(" min left"),
            "\(r.stderr)")
        let failing = try failingScript(saying: "No module named decord")
        let failed = try run(script, ["1", "2"], environment: ["PEERS": failing])
        #expect(
            failed.status == 1 && failed.stderr.contains("\(failing) failed:\nNo module named decord"),
            "\(failed.stderr)")
        let noClips = try run(script, ["1", "0"], environment: ["PEERS": peers])
        #expect(
            noClips.status == 64 && noClips.stderr.contains("CLIPS: '0' is not a positive integer"), "\(noClips.stderr)"
        )
    }

    /// A Python script that fails as a peer's does without its library: `message` on stderr, exit 1.
    func failingScript(saying message: String) throws -> String {
        let path = "\(scratchDirectory("files", made: true))/failing.py"
        try "import sys\nsys.exit('\(message)')\n".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `nlbench step --layers` breaks the step down: sgemm's share, the machine's sgemm rate and
    /// the step's share of it, the sgemm shapes that took longest with their calls and rate, and
    /// each layer's forward and backward time.
    @Test func layersBreakTheStepDown() throws {
        let r = try run("nlbench", ["step", "--model", "nl_i3d_r50_tiny", "--steps", "2", "--layers"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("sgemm: ") && $0.contains("GFLOP/s a thread") }, "\(r.stdout)")
        let machine = lines.first { $0.hasPrefix("the machine's sgemm: ") }
        let share = machine.flatMap { $0.firstMatch(of: /the step runs at (\d+)% of it$/) }.flatMap { Int($0.1) }
        #expect(share.map { $0 > 0 && $0 < 200 } == true, "\(r.stdout)")
        let shapes = lines.filter {
            $0.wholeMatch(of: /\ \ [NT][NT] \d+ x \d+ x \d+ +\d+ calls +[0-9.]+ ms +[0-9.]+ GFLOP\/s a thread/) != nil
        }
        #expect((1...12).contains(shapes.count), "\(r.stdout)")
        #expect(
            lines.contains { $0.hasPrefix("backbone.conv1 ") } && lines.contains { $0.hasPrefix("cls_head ") },
            "\(r.stdout)")
        // In bf16 the share of sgemm's rate says it is a float32 rate.
        guard Precision.bf16.unavailable == nil else { return }
        let bf16 = try run(
            "nlbench", ["step", "--model", "nl_i3d_r50_tiny", "--steps", "1", "--layers", "--precision", "bf16"])
        #expect(bf16.status == 0 && bf16.stdout.contains("of it (a float32 rate: "), "\(bf16.stdout)\(bf16.stderr)")
    }
}
