import Foundation
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLLayers
import NLModels
import NLTensor
import NLVideo

/// Nothing lost when a run goes wrong (issue 31): a run that diverges, outputs that name inputs or
/// are not plain files, and what a work directory holds besides nltrain's own files. Every case
/// failed before its fix.
struct RunGoesWrongTests {
    static let trained = trainedTinyRun

    /// A copy of the trained checkpoint, changed.
    func tampered(
        _ name: String, from file: String = "iter_00000004.safetensors", _ change: (inout SafeTensors) -> Void
    ) throws -> String {
        var checkpoint = try SafeTensors(contentsOf: "\(Self.trained)/\(file)")
        change(&checkpoint)
        let path = "\(scratchDirectory("files", made: true))/\(name).safetensors"
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
        let best = "\(Self.trained)/best.safetensors", dir = scratchDirectory("files", made: true)
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
