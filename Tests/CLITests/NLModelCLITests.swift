import Foundation
import NLTestSupport
import NLTrain
import Testing

struct NLModelCLITests {
    @Test func summaryGivesTheTotals() throws {
        let r = try run("nlmodel", ["summary", "--model", "nl_i3d_r50"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("35,397,840") && r.stdout.contains("88.677"))
        #expect(r.stdout.contains("backbone.layer3.5.non_local_block"))
    }

    @Test func configErrorsExit64WithTheNearestKey() throws {
        let r = try run("nlmodel", ["summary", "--model", "nl_i3d_r50", "--set", "model.num_clases=7"])
        #expect(r.status == 64 && r.stderr.contains("did you mean 'num_classes'?"))
        #expect(try run("nlmodel", ["summary", "--model", "nl_i3d_r50", "--config", "x.cfg"]).status == 64)
    }

    /// forward writes logits and, with --backward, the loss and every gradient under PyTorch's
    /// names; the same weights give the same logits through a checkpoint.
    @Test func forwardWritesLogitsLossAndGradients() throws {
        let dir = temporaryDirectory()
        let spec = ["--model", "nl_i3d_r50_tiny", "--set", "model.num_classes=5"]
        var input = SafeTensors()
        var generator = SeededGenerator(seed: 3)
        let clip = Tensor(zeros: [2, 3, 8, 32, 32])
        clip.fillNormal(std: 1, using: &generator)
        input.set("clip", clip)
        input.set("labels", int64s: [1, 4], shape: [2])
        try input.write(to: "\(dir)/in.safetensors")
        let r = try run(
            "nlmodel",
            ["forward"] + spec + [
                "--input", "\(dir)/in.safetensors", "--output", "\(dir)/out.safetensors", "--train-mode", "--backward",
            ])
        #expect(r.status == 0, "\(r.stderr)")
        let out = try SafeTensors(contentsOf: "\(dir)/out.safetensors")
        #expect(out.entries["logits"]?.shape == [2, 5] && out.entries["loss"]?.shape == [])
        let model = Recognizer(
            spec: try Config(path: nil, overrides: ["model.name=nl_i3d_r50_tiny", "model.num_classes=5"]).model.spec)
        #expect(Set(out.names.filter { $0.hasPrefix("grad.") }) == Set(model.parameters.map { "grad.\($0.name)" }))
        #expect(out.entries["grad.backbone.conv1.conv.weight"]?.shape == [4, 3, 5, 7, 7])

        // Save weights, run inference through --ckpt: same logits as from the same seed.
        var weights = SafeTensors()
        model.save(into: &weights)
        try weights.write(to: "\(dir)/w.safetensors")
        let a = try run(
            "nlmodel",
            ["forward"] + spec + [
                "--ckpt", "\(dir)/w.safetensors", "--input", "\(dir)/in.safetensors", "--output",
                "\(dir)/a.safetensors",
            ])
        let b = try run(
            "nlmodel", ["forward"] + spec + ["--input", "\(dir)/in.safetensors", "--output", "\(dir)/b.safetensors"])
        #expect(a.status == 0 && b.status == 0)
        #expect(
            try SafeTensors(contentsOf: "\(dir)/a.safetensors").tensor("logits")!.array
                == SafeTensors(contentsOf: "\(dir)/b.safetensors").tensor("logits")!.array)
    }

    @Test func badInputsGiveDataAndIOErrors() throws {
        let dir = temporaryDirectory()
        let missing = try run(
            "nlmodel",
            [
                "forward", "--model", "nl_i3d_r50_tiny", "--input", "\(dir)/none.safetensors", "--output",
                "\(dir)/o.safetensors",
            ])
        #expect(missing.status == 74 && missing.stderr.contains("none.safetensors"))
        try Data("not safetensors".utf8).write(to: URL(fileURLWithPath: "\(dir)/junk.safetensors"))
        let junk = try run(
            "nlmodel",
            [
                "forward", "--model", "nl_i3d_r50_tiny", "--input", "\(dir)/junk.safetensors", "--output",
                "\(dir)/o.safetensors",
            ])
        #expect(junk.status == 65 && junk.stderr.contains("junk.safetensors"))
        var noLabels = SafeTensors()
        noLabels.set("clip", Tensor(zeros: [1, 3, 8, 32, 32]))
        try noLabels.write(to: "\(dir)/nolabels.safetensors")
        let r = try run(
            "nlmodel",
            [
                "forward", "--model", "nl_i3d_r50_tiny", "--input", "\(dir)/nolabels.safetensors", "--output",
                "\(dir)/o.safetensors", "--backward",
            ])
        #expect(r.status == 65 && r.stderr.contains("labels"))
        let wrongCheckpoint = try run(
            "nlmodel",
            [
                "forward", "--model", "nl_i3d_r50", "--ckpt", "\(dir)/nolabels.safetensors",
                "--input", "\(dir)/nolabels.safetensors", "--output", "\(dir)/o.safetensors",
            ])
        #expect(wrongCheckpoint.status == 65 && wrongCheckpoint.stderr.contains("missing"))
    }

    @Test func inflateReportsWhatItMapped() throws {
        let dir = temporaryDirectory()
        var file2D = SafeTensors()
        file2D.set("conv1.weight", Tensor(shape: [4, 3, 7, 7], repeating: 0.5))
        file2D.set("fc.weight", Tensor(zeros: [10, 128]))
        try file2D.write(to: "\(dir)/r2d.safetensors")
        let r = try run(
            "nlmodel",
            [
                "inflate", "--model", "nl_i3d_r50_tiny", "--from", "\(dir)/r2d.safetensors", "--output",
                "\(dir)/i.safetensors",
            ])
        #expect(
            r.status == 0 && r.stdout.contains("mapped 1 tensors")
                && r.stdout.contains("not used from \(dir)/r2d.safetensors: fc.weight"))
        let inflated = try SafeTensors(contentsOf: "\(dir)/i.safetensors").tensor("backbone.conv1.conv.weight")!
        #expect(inflated.shape == [4, 3, 5, 7, 7] && inflated.array.allSatisfy { abs($0 - 0.1) < 1e-7 })
        var unrelated = SafeTensors()
        unrelated.set("something", Tensor(zeros: [2]))
        try unrelated.write(to: "\(dir)/u.safetensors")
        #expect(
            try run(
                "nlmodel",
                [
                    "inflate", "--model", "nl_i3d_r50_tiny", "--from", "\(dir)/u.safetensors", "--output",
                    "\(dir)/i.safetensors",
                ]
            ).status == 65)
    }

    /// As shipped, with no variable set, OpenBLAS runs the newest kernel the CPU allows (on a CPU
    /// newer than OpenBLAS's table, the command starts itself again with it), and says so; a
    /// user's OPENBLAS_CORETYPE wins.
    @Test func theBestKernelWithoutAVariable() throws {
        let shipped = try run(
            "/usr/bin/env",
            [
                "-u", "OPENBLAS_CORETYPE", "\(commandDirectory)/nlbench", "step", "--model", "nl_i3d_r50_tiny",
                "--steps", "1",
            ])
        #expect(shipped.status == 0, "\(shipped.stderr)")
        let kernel =
            shipped.stdout.components(separatedBy: "kernel ").last.map { String($0.prefix { $0 != " " }) } ?? ""
        if let best = BLASKernel.best(for: .current) {
            #expect(
                BLASKernel.choice(for: .current, openBLASChose: kernel) == nil && !kernel.isEmpty,
                "runs \(kernel), the CPU allows \(best): \(shipped.stdout)")
        }
        #expect(
            shipped.stdout.contains(CPUFeatures.current.model) && shipped.stdout.contains(CPUFeatures.current.vectorISA)
        )
        let forced = try run(
            "nlbench", ["step", "--model", "nl_i3d_r50_tiny", "--steps", "1"],
            environment: ["OPENBLAS_CORETYPE": "Prescott"])
        #expect(forced.status == 0 && forced.stdout.contains("kernel Prescott (OPENBLAS_CORETYPE)"), "\(forced.stdout)")
    }

    /// A user's OPENBLAS_CORETYPE whose kernels this CPU cannot run (SkylakeX's AVX-512 on an AVX2
    /// CPU) is refused with what it needs and exit 64, where the first sgemm died of an illegal
    /// instruction. Runs on CPUs without AVX-512; elsewhere Swift Testing reports it skipped.
    @Test(.enabled(if: !CPUFeatures.current.avx512))
    func aKernelBeyondTheCPUIsRefused() throws {
        let r = try run(
            "nlbench", ["step", "--model", "nl_i3d_r50_tiny", "--steps", "1"],
            environment: ["OPENBLAS_CORETYPE": "SkylakeX"])
        #expect(
            r.status == 64
                && r.stderr.contains(
                    "OPENBLAS_CORETYPE=SkylakeX has OpenBLAS run its SkylakeX kernels, which need AVX-512")
                && r.stderr.contains("this CPU (\(CPUFeatures.current.model)) has \(CPUFeatures.current.vectorISA)"),
            "\(r.stderr)")
    }

    /// Without NL_THREADS a command runs a thread for each core its CPU affinity mask allows (as
    /// taskset, mpirun's binding and Slurm set it), not for each core of the machine, and says so;
    /// a user's NL_THREADS wins, then OMP_NUM_THREADS (PyTorch's), and one that is not a positive
    /// number is named in a warning.
    @Test func threadsFollowTheCoresTheProcessMayUse() throws {
        let step = ["\(commandDirectory)/nlbench", "step", "--model", "nl_i3d_r50_tiny", "--steps", "1"]
        let bound = try run("/usr/bin/env", ["-u", "NL_THREADS", "-u", "OMP_NUM_THREADS", "taskset", "-c", "0"] + step)
        #expect(
            bound.status == 0 && bound.stdout.contains(" threads=1 ") && bound.stdout.contains(", 1 thread, "),
            "\(bound.stdout)\(bound.stderr)")
        let set = try run("/usr/bin/env", ["NL_THREADS=3", "taskset", "-c", "0"] + step)
        #expect(
            set.status == 0 && set.stdout.contains(" threads=3 ")
                && set.stderr.contains("warning: NL_THREADS=3 is more than the 1 core"), "\(set.stdout)\(set.stderr)")
        let absurd = try run("/usr/bin/env", ["NL_THREADS=100000", "taskset", "-c", "0"] + step)
        #expect(
            absurd.status == 0 && absurd.stdout.contains(" threads=4 ")
                && absurd.stderr.contains("using 4 (4 a core at most)"), "\(absurd.stdout)\(absurd.stderr)")
        let omp = try run("/usr/bin/env", ["-u", "NL_THREADS", "OMP_NUM_THREADS=3,1", "taskset", "-c", "0"] + step)
        #expect(omp.status == 0 && omp.stdout.contains(" threads=3 "), "\(omp.stdout)\(omp.stderr)")
        let both = try run("/usr/bin/env", ["NL_THREADS=2", "OMP_NUM_THREADS=3", "taskset", "-c", "0"] + step)
        #expect(both.status == 0 && both.stdout.contains(" threads=2 "), "\(both.stdout)\(both.stderr)")
        let wrongOMP = try run(
            "/usr/bin/env", ["-u", "NL_THREADS", "OMP_NUM_THREADS=all", "taskset", "-c", "0"] + step)
        #expect(
            wrongOMP.status == 0 && wrongOMP.stdout.contains(" threads=1 ")
                && wrongOMP.stderr.contains("warning: OMP_NUM_THREADS='all' is not a positive whole number"),
            "\(wrongOMP.stderr)")
        let wrong = try run("/usr/bin/env", ["NL_THREADS=four", "taskset", "-c", "0"] + step)
        #expect(
            wrong.status == 0 && wrong.stdout.contains(" threads=1 ")
                && wrong.stderr.contains(
                    "warning: NL_THREADS='four' is not a positive whole number; using 1 thread, the cores this process may use"
                ), "\(wrong.stdout)\(wrong.stderr)")
        let none = try run("/usr/bin/env", ["NL_THREADS=0", "taskset", "-c", "0"] + step)
        #expect(
            none.status == 0 && none.stdout.contains(" threads=1 ")
                && none.stderr.contains("warning: NL_THREADS='0' is not a positive whole number"), "\(none.stderr)")
    }

    /// A process whose cgroup may use one CPU runs one thread, as in a container limited with
    /// docker --cpus 1: a cgroup v1 made for the test with a quota of 100 ms a 100 ms period. Runs
    /// where the cpu controller is mounted at /sys/fs/cgroup/cpu and the tests may make groups
    /// there (as root, as CI runs them); elsewhere Swift Testing reports it skipped.
    @Test(.enabled(if: FileManager.default.isWritableFile(atPath: "/sys/fs/cgroup/cpu")))
    func aCPUQuotaSetsTheThreads() throws {
        let group = "/sys/fs/cgroup/cpu/nl-test-\(getpid())"
        try FileManager.default.createDirectory(atPath: group, withIntermediateDirectories: false)
        defer { rmdir(group) }
        try "100000".write(toFile: "\(group)/cpu.cfs_period_us", atomically: false, encoding: .utf8)
        try "100000".write(toFile: "\(group)/cpu.cfs_quota_us", atomically: false, encoding: .utf8)
        let step = "env -u NL_THREADS \(commandDirectory)/nlbench step --model nl_i3d_r50_tiny --steps 1"
        let r = try run("/bin/sh", ["-c", "echo $$ > \(group)/cgroup.procs && exec \(step)"])
        #expect(r.status == 0 && r.stdout.contains(" threads=1 "), "\(r.stdout)\(r.stderr)")
    }

    /// scripts/bench/compare_step_with_pytorch.sh's plumbing, with a stand-in for PyTorch's step
    /// (the real one needs PyTorch, which CI never installs): the machine line whole, and a row for
    /// the shape with both sides' seconds, the ratio and the rounds' own ratios (here the stand-in's
    /// 0.5 s over nlbench's, in each of 2 rounds); a shape that is not three positive integers, or
    /// ROUNDS that is not a positive integer, is refused before anything runs; a yardstick that
    /// fails (PyTorch missing) stops it with what the yardstick said.
    @Test func theStepComparisonScriptRuns() throws {
        let yardstick = "\(temporaryDirectory())/yardstick.py"
        try """
        print("pytorch 0.0 threads=2 batch=1 frames=8 size=64: train-step 1.5 GFLOP, median 0.500 s, 3.0 GFLOP/s, 2.00 clips/s, peak RSS 100 MiB")

        """.write(toFile: yardstick, atomically: true, encoding: .utf8)
        let script = "\(ReadmeCommandsTests.repository)/scripts/bench/compare_step_with_pytorch.sh"
        let r = try run(script, ["2"], environment: ["YARDSTICK": yardstick, "SHAPES": "1 8 64"])
        #expect(r.status == 0, "\(r.stderr)")
        let cpu = CPUFeatures.current
        #expect(
            r.stdout.contains("machine: \(cpu.model) (\(cpu.vectorISA)), OpenBLAS")
                && r.stdout.contains(" threads, built for "), "\(r.stdout)")
        let row = r.stdout.split(separator: "\n").first { $0.hasPrefix("batch 1x8x64: 1.5 GFLOP; nlbench ") }
        let ratios = row.flatMap { $0.firstMatch(of: /: ([0-9.]+)x \(rounds ([0-9.]+)-([0-9.]+)x\)$/) }
        #expect(row?.contains("pytorch 0.500 s (3.0 GFLOP/s, 100 MiB): ") == true && ratios != nil, "\(r.stdout)")
        if let ratios, let low = Double(ratios.2), let high = Double(ratios.3), let ratio = Double(ratios.1) {
            #expect(low <= ratio + 0.01 && ratio <= high + 0.01 && low > 0, "\(r.stdout)")
        }
        #expect(r.stderr.contains("1x8x64 round 2/2: nlbench ") && r.stderr.contains(" min left"), "\(r.stderr)")
        let bad = try run(script, ["1"], environment: ["YARDSTICK": yardstick, "SHAPES": "1 8 64,2 x 3"])
        #expect(bad.status == 64 && bad.stderr.contains("SHAPES: '2 x 3' is not 'batch frames size'"), "\(bad.stderr)")
        let noRounds = try run(script, ["0"], environment: ["YARDSTICK": yardstick, "SHAPES": "1 8 64"])
        #expect(
            noRounds.status == 64 && noRounds.stderr.contains("ROUNDS: '0' is not a positive integer"),
            "\(noRounds.stderr)")
        let failing = try failingScript(saying: "No module named torch")
        let failed = try run(script, ["1"], environment: ["YARDSTICK": failing, "SHAPES": "1 8 64"])
        #expect(
            failed.status == 1
                && failed.stderr.contains("\(failing) --batch 1 --frames 8 --size 64 failed:\nNo module named torch"),
            "\(failed.stderr)")
    }

    /// scripts/bench/compare_decode_with_python.sh's plumbing on the benchmark's own videos, with a
    /// stand-in for the Python decoders (CI installs none) that reports 2 and 4 clips/s: a row for
    /// nlvideo and for each peer with a figure in each of the four cells, the ratio row over the
    /// faster peer, and a progress line a cell on stderr; a peer script that fails stops it with
    /// what that script said, and CLIPS that is not a positive integer is refused.
    @Test func theDecodeComparisonScriptRuns() throws {
        let peers = "\(temporaryDirectory())/peers.py"
        try """
        import sys
        workers = sys.argv[sys.argv.index("--workers") + 1]
        for name, speed in (("PyAV, seek + swscale to size", 2.0), ("decord, size given to its reader", 4.0)):
            print(f"{name} workers={workers} clip_len=32 interval=2 short_side=256: 2 clips in 1.00 s, {speed} clips/s")

        """.write(toFile: peers, atomically: true, encoding: .utf8)
        let script = "\(ReadmeCommandsTests.repository)/scripts/bench/compare_decode_with_python.sh"
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
        let path = "\(temporaryDirectory())/failing.py"
        try "import sys\nsys.exit('\(message)')\n".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `nlbench step --layers` breaks the step down: sgemm's share, the sgemm shapes that took
    /// longest with their calls and rate, and each layer's forward and backward time.
    @Test func layersBreakTheStepDown() throws {
        let r = try run("nlbench", ["step", "--model", "nl_i3d_r50_tiny", "--steps", "2", "--layers"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("sgemm: ") && $0.contains("GFLOP/s a thread") }, "\(r.stdout)")
        let shapes = lines.filter {
            $0.wholeMatch(of: /\ \ [NT][NT] \d+ x \d+ x \d+ +\d+ calls +[0-9.]+ ms +[0-9.]+ GFLOP\/s a thread/) != nil
        }
        #expect((1...12).contains(shapes.count), "\(r.stdout)")
        #expect(
            lines.contains { $0.hasPrefix("backbone.conv1 ") } && lines.contains { $0.hasPrefix("cls_head ") },
            "\(r.stdout)")
    }

    /// A binary built for x86-64-v4 (AVX-512) refuses to start, with a message, where the CPU lacks
    /// it, and runs where it has it: Sources/CBuildTarget's check, compiled here with cc.
    @Test func aBuildForANewerCPUSaysSo() throws {
        let dir = temporaryDirectory(),
            source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
                "../../Sources/CBuildTarget"
            ).standardized.path
        try "int main(void) { return 0; }\n".write(toFile: "\(dir)/main.c", atomically: true, encoding: .utf8)
        let built = try run(
            "/usr/bin/env",
            [
                "cc", "-DNL_BUILD_LEVEL=4", "-I", "\(source)/include", "\(source)/build_target.c", "\(dir)/main.c",
                "-o", "\(dir)/v4",
            ])
        #expect(built.status == 0, "\(built.stderr)")
        let r = try run("\(dir)/v4", [])
        if BuildTarget.cpuRuns(level: 4) {
            #expect(r.status == 0)
        } else {
            #expect(
                r.status == 70 && r.stderr.contains("compiled for x86-64-v4 (AVX-512), which this CPU lacks")
                    && r.stderr.contains("make build"), "\(r.stderr)")
        }
    }
}
