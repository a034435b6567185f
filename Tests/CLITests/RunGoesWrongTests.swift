import Foundation
import NLTestSupport
import NLTrain
import Testing

/// Nothing lost when a run goes wrong (issue 31): a run that diverges, outputs that name inputs or
/// are not plain files, and what a work directory holds besides nltrain's own files. Every case
/// failed before its fix.
struct RunGoesWrongTests {
    /// A run of one finished epoch (checkpoint iter_00000004), shared by the cases that need one.
    static let trained: String = {
        let work = scratchDirectory("wrong-trained")
        let r = try! run("nltrain", ["--config", tinyRunConfig(workDirectory: work, epochs: 1)])
        precondition(r.status == 0, r.stderr)
        return work
    }()

    /// A copy of the trained checkpoint, changed.
    func tampered(
        _ name: String, from file: String = "iter_00000004.safetensors", _ change: (inout SafeTensors) -> Void
    ) throws -> String {
        var checkpoint = try SafeTensors(contentsOf: "\(Self.trained)/\(file)")
        change(&checkpoint)
        let path = "\(temporaryDirectory())/\(name).safetensors"
        try checkpoint.write(to: path)
        return path
    }

    /// The tensor `name` of `file` with its element 1 set to `value`.
    static func withOne(_ value: Float, like file: SafeTensors, _ name: String) -> Tensor {
        let tensor = file.tensor(name)!.copy()
        tensor.data[1] = value
        return tensor
    }

    /// Every checkpoint a work directory holds loads.
    func expectEveryCheckpointLoads(_ work: String) throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: work) where name.hasSuffix(".safetensors") {
            #expect(throws: Never.self, "\(name)") { try Checkpoint(path: "\(work)/\(name)").checkValues() }
        }
    }

    // MARK: Divergence

    /// A learning rate far too high: the run stops (70) at the first value that is not finite, a
    /// BatchNorm variance while the loss (on batch statistics) still was, writing nothing; it
    /// exited 0 with checkpoints that could not be loaded.
    @Test func aDivergingRunStopsBeforeWritingIt() throws {
        let work = scratchDirectory("wrong-diverge")
        let r = try run(
            "nltrain",
            [
                "--config", tinyRunConfig(workDirectory: work, epochs: 8), "--set", "train.lr=100", "--set",
                "train.grad_clip=0",
                "--set", "train.warmup=none", "--set", "train.batch_size=2",
            ])
        #expect(
            r.status == 70 && r.stderr.contains("the run diverged: ")
                && r.stderr.contains("No checkpoint was written before it"), "\(r.stderr)")
        #expect(try !FileManager.default.contentsOfDirectory(atPath: work).contains { $0.hasSuffix(".safetensors") })
    }

    /// Diverging after a checkpoint: the message names the last checkpoint that loads, every
    /// checkpoint left loads, and the same command with a sane rate resumes from it.
    @Test func aDivergingRunNamesTheCheckpointToGoBackTo() throws {
        let work = scratchDirectory("wrong-diverge-later")
        try FileManager.default.copyItem(atPath: Self.trained, toPath: work)
        let config = tinyRunConfig(workDirectory: work, epochs: 3)
        let r = try run(
            "nltrain",
            [
                "--config", config, "--set", "train.lr=100", "--set", "train.grad_clip=0", "--set", "train.warmup=none",
                "--set", "train.lr_steps=", "--set", "train.batch_size=2",
            ])
        #expect(
            r.status == 70 && r.stderr.contains("The last checkpoint that loads is \(work)/iter_00000004.safetensors"),
            "\(r.stderr)")
        try expectEveryCheckpointLoads(work)
        let again = try run("nltrain", ["--config", config])
        #expect(
            again.status == 0 && again.stdout.contains("resuming from \(work)/iter_00000004.safetensors"),
            "\(again.stdout)\(again.stderr)")
    }

    /// A checkpoint that would not load (an infinite running variance), newest of all: pruning
    /// neither counts nor removes it, and keeps the newest that load; it counted it as readable
    /// and removed the last good one.
    @Test func pruningCountsOnlyCheckpointsThatLoad() throws {
        let work = scratchDirectory("wrong-prune")
        let config = tinyRunConfig(workDirectory: work, epochs: 2)
        #expect(try run("nltrain", ["--config", config, "--max-time", "0"]).status == 75)
        let broken = try tampered("broken") {
            $0.set("backbone.conv1.bn.running_var", Self.withOne(.infinity, like: $0, "backbone.conv1.bn.running_var"))
        }
        try FileManager.default.copyItem(atPath: broken, toPath: "\(work)/iter_99999999.safetensors")
        for _ in 0..<3 {
            #expect(
                try run("nltrain", ["--config", config, "--max-time", "0", "--set", "train.keep_checkpoints=1"]).status
                    == 75)
        }
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: work))
        #expect(
            files.contains("iter_00000004.safetensors") && files.contains("iter_99999999.safetensors")
                && !files.contains("iter_00000003.safetensors"), "\(files)")
        #expect(throws: CheckpointError.self) {
            try Checkpoint(path: "\(work)/iter_99999999.safetensors").checkValues()
        }
    }

    // MARK: Checkpoints that cannot be a result

    /// Values no run could have made are refused where they are read (65): a negative variance,
    /// NaN momentum; best.safetensors (weights without momentum) is not resumed from with zero
    /// momentum; and a model whose outputs are not finite gives no accuracy.
    @Test func impossibleValuesAreRefused() throws {
        let negative = try tampered("negative") {
            $0.set("backbone.conv1.bn.running_var", Self.withOne(-0.5, like: $0, "backbone.conv1.bn.running_var"))
        }
        let evaluated = try run("nleval", ["--ckpt", negative])
        #expect(
            evaluated.status == 65
                && evaluated.stderr.contains("backbone.conv1.bn.running_var holds a negative variance (-0.5 at 1)"),
            "\(evaluated.stderr)")
        let nanMomentum = try tampered("nan-momentum") {
            $0.set("optimizer.cls_head.fc_cls.bias", Self.withOne(.nan, like: $0, "optimizer.cls_head.fc_cls.bias"))
        }
        let config = tinyRunConfig(workDirectory: scratchDirectory("wrong-resume"), epochs: 2)
        let resumed = try run("nltrain", ["--config", config, "--resume", nanMomentum])
        #expect(
            resumed.status == 65
                && resumed.stderr.contains("optimizer.cls_head.fc_cls.bias holds NaN or infinite values"),
            "\(resumed.stderr)")
        let best = try run("nltrain", ["--config", config, "--resume", "\(Self.trained)/best.safetensors"])
        #expect(
            best.status == 65 && best.stderr.contains("holds weights but no optimizer state (momentum)")
                && best.stderr.contains("--init"), "\(best.stderr)")
        let huge = try tampered("huge") {
            $0.set(
                "cls_head.fc_cls.weight", Tensor(shape: $0.entries["cls_head.fc_cls.weight"]!.shape, repeating: 3e38))
        }
        let overflowing = try run("nleval", ["--ckpt", huge])
        #expect(
            overflowing.status == 65 && overflowing.stderr.contains("its outputs are not finite for 6 of 6 videos")
                && !overflowing.stdout.contains("top-1"),
            "\(overflowing.stdout)\(overflowing.stderr)")
    }

    // MARK: Outputs

    /// Outputs that are not plain files stay what they are: /dev/stdout is written through (it
    /// became a file, as root), a FIFO too, a symbolic link stays a link to its target, newly
    /// written; a device that cannot take the bytes says so (74) and stays a device.
    @Test func outputsKeepWhatThePathIs() throws {
        let best = "\(Self.trained)/best.safetensors", dir = temporaryDirectory()
        let printed = try run("nleval", ["--ckpt", best, "--json", "/dev/stdout"])
        #expect(
            printed.status == 0 && printed.stdout.split(separator: "\n").last?.hasPrefix("{\"checkpoint\":") == true,
            "\(printed.stdout)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/dev/stdout") == "/proc/self/fd/1")

        try "old".write(toFile: "\(dir)/target.json", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/link.json", withDestinationPath: "target.json")
        #expect(try run("nleval", ["--ckpt", best, "--json", "\(dir)/link.json"]).status == 0)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/link.json") == "target.json")
        #expect(try String(contentsOfFile: "\(dir)/target.json", encoding: .utf8).hasPrefix("{\"checkpoint\":"))

        #expect(mkfifo("\(dir)/fifo", 0o644) == 0)
        // open waits for the writer
        let reader = Thread { _ = FileHandle(forReadingAtPath: "\(dir)/fifo")?.readDataToEndOfFile() }
        reader.start()
        #expect(try run("nleval", ["--ckpt", best, "--dump", "\(dir)/fifo"]).status == 0)
        var status = stat()
        #expect(lstat("\(dir)/fifo", &status) == 0 && status.st_mode & S_IFMT == S_IFIFO)

        // A node of /dev/full (root makes one; others may not): no space left, and still a device.
        if mknod("\(dir)/full", S_IFCHR | 0o666, dev_t(1 << 8 | 7)) == 0 {
            let full = try run("nleval", ["--ckpt", best, "--json", "\(dir)/full"])
            #expect(full.status == 74 && full.stderr.contains("no space left on device"), "\(full.stderr)")
            #expect(lstat("\(dir)/full", &status) == 0 && status.st_mode & S_IFMT == S_IFCHR)
        }
    }

    /// What nltrain removes at its start: its own temporaries of a process that is gone, nothing
    /// else; it removed every entry holding ".tmp-", folders with what they held.
    @Test func cleanupRemovesOnlyWhatNltrainWrote() throws {
        let work = scratchDirectory("wrong-cleanup")
        try FileManager.default.createDirectory(atPath: "\(work)/backup.tmp-2025", withIntermediateDirectories: true)
        let mine = [
            "notes.tmp-keep", "backup.tmp-2025/iter_00000004.safetensors", "data.tmp-99999999",
            "iter_00000004.safetensors.tmp-\(getpid())",
        ]
        let leftover = ["iter_00000004.safetensors.tmp-99999999", "last_checkpoint.tmp-99999998"]
        for name in mine + leftover { try "x".write(toFile: "\(work)/\(name)", atomically: false, encoding: .utf8) }
        let r = try run("nltrain", ["--config", tinyRunConfig(workDirectory: work, epochs: 1), "--max-time", "0"])
        #expect(r.status == 75, "\(r.stderr)")
        for name in mine { #expect(FileManager.default.fileExists(atPath: "\(work)/\(name)"), "\(name) removed") }
        for name in leftover { #expect(!FileManager.default.fileExists(atPath: "\(work)/\(name)"), "\(name) left") }
    }
}

/// Hangs (issue 31): a stop is honoured whatever the run waits on, and ranks that would wait on
/// each other for ever are stopped before they train.
struct StopsAreHonouredTests {
    /// The synthetic dataset's training videos as class folders, with a FIFO among them.
    static let folders: String = {
        let root = scratchDirectory("folders")
        try! FileManager.default.copyItem(atPath: "\(syntheticDatasetDirectory)/train", toPath: "\(root)/train")
        precondition(mkfifo("\(root)/train/moving left/pipe.mp4", 0o644) == 0)
        return root
    }()

    func config(_ work: String, epochs: Int = 1) -> [String] {
        [
            "--config", tinyRunConfig(workDirectory: work, epochs: epochs), "--set", "data.format=folders", "--set",
            "data.root=\(Self.folders)",
            "--set", "data.train_annotations=\(Self.folders)/train", "--set", "data.val_annotations=", "--set",
            "train.max_bad_fraction=0.5",
        ]
    }

    /// A FIFO named like a video (the stand-in for a stalled NFS or FUSE read) is no video: named
    /// in bad_videos.txt and passed over. It stopped training after 2 iterations, deaf to SIGTERM.
    @Test func aFIFOAmongTheVideosIsSkippedAndNamed() throws {
        let work = scratchDirectory("stop-fifo")
        let r = try run("nltrain", config(work))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(
            try String(contentsOfFile: "\(work)/bad_videos.txt", encoding: .utf8).contains(
                "pipe.mp4: is a FIFO (named pipe), not a video file"))
    }

    /// A read that stalls past data.read_timeout is a broken video: named, replaced, and the
    /// epoch ends.
    @Test func aStalledReadIsABrokenVideo() throws {
        let work = scratchDirectory("stop-stall")
        let r = try run(
            "nltrain", config(work) + ["--set", "data.read_timeout=1"],
            environment: ["NL_SIMULATE_STALLED_READ": "moving up"])
        #expect(r.status == 0 && r.stdout.contains("finished 1 epochs"), "\(r.stdout)\(r.stderr)")
        #expect(
            try String(contentsOfFile: "\(work)/bad_videos.txt", encoding: .utf8).contains(
                "reading stalled for more than 1 s (data.read_timeout)"))
    }

    /// SIGTERM while every read stalls: the run stops at once with 75, on a checkpoint of the
    /// iterations it did, and the same command goes on from there.
    @Test func aStopWhileWaitingForDataIsHonoured() throws {
        let work = scratchDirectory("stop-wait")
        // Every video stalls: the run waits for its first batch.
        let launched = try Launched(
            "nltrain", config(work, epochs: 2) + ["--set", "data.workers=1", "--set", "train.batch_size=2"],
            environment: ["NL_SIMULATE_STALLED_READ": "moving"])
        _ = launched.wait { launched.stdout.contains("training nl_i3d_r18_small") }
        Thread.sleep(forTimeInterval: 1)
        #expect(launched.signal(SIGTERM) == 75, "\(launched.stdout)\(launched.stderr)")
        #expect(
            launched.stdout.contains("stopped by SIGTERM while waiting for data at epoch 1 iteration 0"),
            "\(launched.stdout)")
    }

    /// SIGUSR1 (Slurm's `--signal=B:USR1@N` warning) stops after a checkpoint, as SIGTERM does; it
    /// killed the run (exit 138) without one.
    @Test func sigusr1StopsAfterACheckpoint() throws {
        let work = scratchDirectory("stop-usr1")
        let launched = try Launched("nltrain", ["--config", tinyRunConfig(workDirectory: work, epochs: 30)])
        _ = launched.wait { launched.stdout.components(separatedBy: " iter ").count >= 3 }
        #expect(launched.signal(SIGUSR1) == 75, "\(launched.stderr)")
        #expect(launched.stdout.contains("stopped by SIGUSR1 (the scheduler's warning)"), "\(launched.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: work).contains { $0.hasPrefix("iter_") })
    }

    /// A SIGTERM as soon as the handlers are in place, before any training: exit 75, nothing
    /// lost; the handlers come first, so it no longer kills the run (143). Started with SIGTERM
    /// blocked (Foundation's Process passes on the test thread's mask), which nltrain undoes.
    @Test func anEarlySigtermStopsCleanly() throws {
        let work = scratchDirectory("stop-early")
        let launched = try Launched("nltrain", ["--config", tinyRunConfig(workDirectory: work, epochs: 1)])
        #expect(launched.wait { launched.catches(SIGTERM) })
        #expect(launched.signal(SIGTERM) == 75, "\(launched.stderr)")
        // Before the first iteration, whether before the loop or waiting for its first batch.
        #expect(
            launched.stdout.contains("stopped by SIGTERM before training")
                || launched.stdout.contains("stopped by SIGTERM while waiting for data at epoch 1 iteration 0"),
            "\(launched.stdout)")
        #expect(
            try !FileManager.default.contentsOfDirectory(atPath: work).contains { $0.hasPrefix("iter_") },
            "nothing to save, nothing saved")
    }

    /// Ranks started with different batch sizes: refused (64) before training, the keys named;
    /// they trained 4 iterations and then hung in a collective.
    @Test func ranksThatDisagreeStopBeforeTraining() throws {
        let work = scratchDirectory("stop-ranks"), config = tinyRunConfig(workDirectory: work, epochs: 1)
        let command = "\(commandDirectory)/nltrain"
        let r = try run(
            "/usr/bin/mpirun",
            [
                "--oversubscribe", "-np", "1", command, "--config", config, "--set", "train.batch_size=2", ":",
                "-np", "1", command, "--config", config, "--set", "train.batch_size=4",
            ], environment: mpiEnvironment)
        #expect(
            r.status == 64
                && r.stderr.contains(
                    "the processes of this job run different configs: train.batch_size is 2 on rank 0 and 4 on rank 1"),
            "\(r.stderr)")
    }
}

/// Positions, records and settings that would give a silently wrong run (issue 31).
struct SilentlyWrongTests {
    /// A run resumed on a training list that shrank (18 videos, 4 iterations an epoch, to 8: 2)
    /// from epoch 1 iteration 3: the epoch counts as done, said, and the global iteration the
    /// schedule runs on follows the new epochs; it skipped epoch 1 and warmed up anew in epoch 2.
    @Test func aPositionBeyondTheEpochIsMappedNotSkipped() throws {
        let work = scratchDirectory("wrong-shrunk")
        let config = tinyRunConfig(workDirectory: work, epochs: 2)
        for _ in 0..<3 { #expect(try run("nltrain", ["--config", config, "--max-time", "0"]).status == 75) }
        let rows = try String(contentsOfFile: "\(syntheticDatasetDirectory)/train.csv", encoding: .utf8).split(
            separator: "\n"
        ).prefix(9)
        let shrunk = "\(work)-train.csv"
        try (rows.joined(separator: "\n") + "\n").write(toFile: shrunk, atomically: true, encoding: .utf8)
        let r = try run(
            "nltrain", ["--config", config, "--set", "data.train_annotations=\(shrunk)", "--max-time", "0"])
        #expect(
            r.status == 75
                && r.stdout.contains(
                    "the checkpoint is at iteration 3 of epoch 1, but an epoch of this data has 2 (the training list changed?): epoch 1 counts as done"
                )
                && r.stdout.contains(
                    "global iteration 2 for epoch 1 iteration 2 of 2-iteration epochs (the checkpoint says 3)"),
            "\(r.stdout)")
        #expect(r.stdout.contains("validating epoch 1"), "the epoch ends as epochs do: its checkpoint and validation")
    }

    /// Positions no run reaches are refused by name (65): an epoch of 2^40 read as "nothing to
    /// do", a finished flag mid-epoch read as a finished run, an iteration of 2^62 trapped on
    /// overflow at another batch size.
    @Test(arguments: [
        ["epoch": "1099511627776"], ["finished": "true", "iteration": "1", "global_iteration": "5"],
        ["iteration": "4611686018427387904", "global_iteration": "4611686018427387904"],
    ])
    func impossiblePositionsAreRefused(_ fields: [String: String]) throws {
        var file = try SafeTensors(contentsOf: "\(RunGoesWrongTests.trained)/iter_00000004.safetensors")
        for (key, value) in fields { file.metadata[key] = value }
        let crafted = "\(temporaryDirectory())/crafted.safetensors"
        try file.write(to: crafted)
        let r = try run(
            "nltrain",
            [
                "--config", tinyRunConfig(workDirectory: scratchDirectory("wrong-position"), epochs: 2), "--resume",
                crafted,
                "--set", "train.batch_size=2",
            ])
        #expect(
            r.status == 65 && r.stderr.contains("\(crafted): the checkpoint") && r.stderr.contains("impossible"),
            "\(fields): \(r.stderr)")
    }

    /// After a kill -9 and a resume, each iteration is one record: metrics.jsonl drops what the
    /// killed run wrote past its checkpoint (it held them twice), and the resumed TensorBoard
    /// file starts with a session START (it wrote a log message TensorBoard ignores).
    @Test func oneStepOneRecord() throws {
        let work = scratchDirectory("wrong-records")
        let config = tinyRunConfig(workDirectory: work, epochs: 1)
        // A checkpoint at iteration 1.
        #expect(try run("nltrain", ["--config", config, "--max-time", "0"]).status == 75)
        let killed = (2...3).map {
            #"{"mode":"train","epoch":1,"iteration":\#($0),"global_iteration":\#($0),"loss":9}"# + "\n"
        }.joined()
        try (try String(contentsOfFile: "\(work)/metrics.jsonl", encoding: .utf8) + killed).write(
            toFile: "\(work)/metrics.jsonl", atomically: true, encoding: .utf8)
        #expect(try run("nltrain", ["--config", config]).status == 0)
        let steps = try String(contentsOfFile: "\(work)/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { line -> Int? in
                let record = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                return record?["mode"] as? String == "train" ? record?["global_iteration"] as? Int : nil
            }
        #expect(steps == [1, 2, 3, 4], "\(steps)")
        let files = try FileManager.default.contentsOfDirectory(atPath: "\(work)/tb").sorted()
        #expect(files.count == 2)
        let resumed = try readEventFile("\(work)/tb/\(files[1])")
        #expect(resumed.first { $0.sessionStart }?.step == 2, "a session START at the first step the resumed run logs")
    }

    /// A clip of one frame with a 3x7x7 stem trains, as in PyTorch and mmaction2, which pad it: it
    /// was refused as "larger than the clip".
    @Test func oneFrameClipsTrain() throws {
        let r = try run(
            "nltrain",
            [
                "--config", tinyRunConfig(workDirectory: scratchDirectory("wrong-one-frame"), epochs: 1),
                "--set", "data.clip_len=1", "--set", "model.conv1_kernel=3 7 7",
            ])
        #expect(r.status == 0 && r.stdout.contains("finished 1 epochs"), "\(r.stderr)")
    }

    /// Settings that contradict each other: a cosine floor above the rate is refused (it climbed
    /// from 0.01 to 0.96); a warmup as long as the run is said.
    @Test func contradictorySettings() throws {
        let config = tinyRunConfig(workDirectory: scratchDirectory("wrong-settings"), epochs: 1)
        let climbing = try run(
            "nltrain", ["--config", config, "--set", "train.lr_policy=cosine", "--set", "train.lr_min=0.96"])
        #expect(
            climbing.status == 64
                && climbing.stderr.contains("train.lr_min 0.96 is above train.lr 0.05: the cosine rate would climb"),
            "\(climbing.stderr)")
        let warm = try run("nltrain", ["--config", config, "--set", "train.warmup_epochs=2"])
        #expect(
            warm.status == 0
                && warm.stdout.contains("warning: train.warmup_epochs 2.0 is as long as the run (1 epochs)"),
            "\(warm.stdout)")
    }
}
