import Foundation
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLLayers
import NLModels
import NLTensor
import NLVideo

/// Faults without losses (issue 14): each case is one a user met, with the exit status and the
/// words the commands must answer it with. Every case failed before its fix.
struct FaultTests {
    static let trained = trainedTinyRun

    func copy(_ file: String, to directory: String, as name: String) -> String {
        try! FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try! FileManager.default.copyItem(atPath: file, toPath: "\(directory)/\(name)")
        return "\(directory)/\(name)"
    }

    /// A copy of the trained checkpoint with one header field changed.
    func tampered(_ name: String, _ change: (inout SafeTensors) -> Void) throws -> String {
        var file = try SafeTensors(contentsOf: "\(Self.trained)/iter_00000004.safetensors")
        change(&file)
        let path = "\(scratchDirectory("files", made: true))/\(name).safetensors"
        try file.write(to: path)
        return path
    }

    // MARK: Work discarded or lost

    /// Every checkpoint unreadable: stop (65) naming them, never start over silently; with
    /// --start-over they are set aside and training starts from scratch.
    @Test func unreadableCheckpointsStopTheRun() throws {
        let work = scratchDirectory("fault-unreadable")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try Data(repeating: 7, count: 1000).write(to: URL(fileURLWithPath: "\(work)/iter_00000004.safetensors"))
        let config = tinyRunConfig(workDirectory: work, epochs: 1)
        let refused = try run("nltrain", ["--config", config])
        #expect(
            refused.status == 65 && refused.stderr.contains("no checkpoint can be read (iter_00000004.safetensors)"),
            "\(refused.stderr)")
        #expect(FileManager.default.fileExists(atPath: "\(work)/iter_00000004.safetensors"))
        let over = try run("nltrain", ["--config", config, "--start-over", "--max-time", "0"])
        #expect(
            over.status == 75
                && over.stdout.contains("starting over: the earlier checkpoints are set aside in \(work)/previous-"),
            "\(over.stdout)")
        let setAside = try FileManager.default.contentsOfDirectory(atPath: work).first { $0.hasPrefix("previous-") }
        #expect(
            setAside.map { FileManager.default.fileExists(atPath: "\(work)/\($0)/iter_00000004.safetensors") } == true)
    }

    /// Unreadable checkpoints that sort after readable ones: pruning keeps the readable ones (the
    /// one just written above all) and leaves the unreadable one; last_checkpoint names a file
    /// that is there. A checkpoint write a kill -9 cut short is removed at the next start.
    @Test func pruningKeepsReadableCheckpoints() throws {
        let work = scratchDirectory("fault-prune")
        let config = tinyRunConfig(workDirectory: work, epochs: 2)
        #expect(try run("nltrain", ["--config", config, "--max-time", "0"]).status == 75)
        try Data(repeating: 7, count: 1000).write(to: URL(fileURLWithPath: "\(work)/iter_99999999.safetensors"))
        try Data(repeating: 7, count: 1000).write(
            to: URL(fileURLWithPath: "\(work)/iter_00000002.safetensors.tmp-99999999"))
        for _ in 0..<3 { #expect(try run("nltrain", ["--config", config, "--max-time", "0"]).status == 75) }
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: work))
        #expect(
            files.isSuperset(of: [
                "iter_00000003.safetensors", "iter_00000004.safetensors", "iter_99999999.safetensors",
            ]), "\(files)")
        #expect(!files.contains("iter_00000002.safetensors") && !files.contains { $0.contains(".tmp-") }, "\(files)")
        #expect(try String(contentsOfFile: "\(work)/last_checkpoint", encoding: .utf8) == "iter_00000004.safetensors\n")
        #expect(
            try String(contentsOfFile: "\(work)/train.log", encoding: .utf8).contains(
                "removed what a killed run left half-written: iter_00000002.safetensors.tmp-99999999"))
    }

    /// bad_videos.txt: videos no longer in the annotations count for nothing, and a line holding
    /// only a tab (or no path) is passed over.
    @Test func staleBadVideoListsCountForNothing() throws {
        let work = scratchDirectory("fault-stale")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let stale = (1...6).map { "/videos/gone_\($0).mp4\tmoov atom not found\n" }.joined() + "\t\n\t\tx\n"
        try stale.write(toFile: "\(work)/bad_videos.txt", atomically: true, encoding: .utf8)
        let r = try run(
            "nltrain",
            [
                "--config", tinyRunConfig(workDirectory: work, epochs: 1), "--set", "train.max_bad_fraction=0.1",
                "--set", "data.train_annotations=\(syntheticDatasetDirectory)/train_with_problems.csv",
            ])
        #expect(r.status == 0, "\(r.stderr)")
    }

    // MARK: Crashes where a clear error is due

    /// A checkpoint whose shape overflows, or whose position is negative, is refused by name (65)
    /// through every way in: nleval --ckpt, nltrain --resume, --init, and automatic resume.
    @Test func hostileCheckpointsAreRefusedByName() throws {
        let overflow = "\(scratchDirectory("files", made: true))/overflow.safetensors"
        try handMadeCheckpoint(
            #"{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#, bytes: 16
        ).write(to: URL(fileURLWithPath: overflow))
        let negative = try tampered("negative") { $0.metadata["epoch"] = "-3" }
        for file in [overflow, negative] {
            let config = tinyRunConfig(workDirectory: scratchDirectory("fault-hostile"), epochs: 1)
            let work = scratchDirectory("fault-automatic")
            let automatic = copy(file, to: work, as: "iter_00000009.safetensors")
            for (arguments, named) in [
                (["nleval", "--ckpt", file], file), (["nltrain", "--config", config, "--resume", file], file),
                (["nltrain", "--config", config, "--init", file], file),
                (["nltrain", "--config", tinyRunConfig(workDirectory: work, epochs: 1)], automatic),
            ] {
                let r = try run(arguments[0], Array(arguments.dropFirst()))
                #expect(
                    r.status == 65 && (r.stderr + r.stdout).contains(named), "\(arguments): \(r.status) \(r.stderr)")
            }
        }
    }

    /// Sizes that cannot work are refused up front (64), not met with a trap or an endless run.
    @Test func absurdSizesAreRefusedUpFront() throws {
        let config = tinyRunConfig(workDirectory: scratchDirectory("fault-sizes"), epochs: 1)
        let cases: [([String], Int32, String)] = [
            (
                [
                    "nltrain", "--config", config, "--set", "train.batch_size=1", "--set", "model.pool1_stride_t=2",
                    "--set", "data.crop_size=16",
                    "--set", "data.train_short_side=16", "--set", "data.test_short_side=16",
                ], 64,
                "Expected more than 1 value per channel when training"
            ),
            (
                ["nltrain", "--config", config, "--set", "data.crop_size=48"], 64,
                "data.crop_size 48 is larger than the short side"
            ),
            (
                ["nltrain", "--config", config, "--set", "data.test_crop_size=64"], 64,
                "data.test_crop_size 64 is larger than the short side"
            ),
            (
                [
                    "nlvideo", "frames", "\(testVideoDirectory)/vp9.webm", "--indices", "0", "--short-side", "60000",
                    "--output", "\(scratchDirectory("files", made: true))/f.safetensors",
                ], 64,
                "larger than 16384 pixels a side"
            ),
            (["nlmodel", "summary", "--model", "nl_i3d_r50", "--clip", "0,8,32,32"], 64, "--clip takes N,T,H,W"),
            (["nlmodel", "summary", "--model", "nl_i3d_r50", "--clip", "1,99999999999,224,224"], 64, "too large"),
        ]
        for (arguments, status, words) in cases {
            let r = try run(arguments[0], Array(arguments.dropFirst()))
            #expect(r.status == status && r.stderr.contains(words), "\(arguments.suffix(4)): \(r.status) \(r.stderr)")
        }
        var input = SafeTensors()
        input.set("clip", Tensor(zeros: [0, 3, 8, 32, 32]))
        let empty = "\(scratchDirectory("files", made: true))/empty_clip.safetensors"
        try input.write(to: empty)
        let r = try run(
            "nlmodel",
            [
                "forward", "--model", "nl_i3d_r50_tiny", "--input", empty, "--output",
                "\(scratchDirectory("files", made: true))/out.safetensors",
            ])
        #expect(r.status == 65 && r.stderr.contains("must be at least 1"), "\(r.stderr)")
    }

    // MARK: Silent wrong results

    /// A finished run extended by raising epochs trains on, saying whose schedule it follows.
    @Test func raisingEpochsExtendsAFinishedRun() throws {
        let work = scratchDirectory("fault-extend")
        try FileManager.default.copyItem(atPath: Self.trained, toPath: work)
        try? FileManager.default.removeItem(atPath: "\(work)/lock")
        let config = tinyRunConfig(workDirectory: work, epochs: 2)
        let r = try run("nltrain", ["--config", config])
        #expect(
            r.status == 0 && r.stdout.contains("extending the finished run from 1 to 2 epochs")
                && r.stdout.contains("finished 2 epochs"), "\(r.stdout)")
        #expect(try SafeTensors(contentsOf: "\(work)/iter_00000008.safetensors").metadata["finished"] == "true")
    }

    /// Resuming with another batch size goes on from the clips seen, not the iteration count.
    @Test func anotherBatchSizeResumesFromTheClipsSeen() throws {
        let work = scratchDirectory("fault-batch")
        let config = tinyRunConfig(workDirectory: work, epochs: 2)
        for _ in 0..<3 { #expect(try run("nltrain", ["--config", config, "--max-time", "0"]).status == 75) }
        let r = try run("nltrain", ["--config", config, "--max-time", "0", "--set", "train.batch_size=2"])
        #expect(
            r.status == 75
                && r.stdout.contains(
                    "this run takes 2: epoch 1 goes on after 12 of the 12 clips it had seen (iteration 6), global iteration 6"
                ), "\(r.stdout)")
        let saved = try SafeTensors(contentsOf: "\(work)/iter_00000007.safetensors").metadata
        #expect(saved["iteration"] == "7" && saved["global_batch"] == "2")
    }

    /// A checkpoint with NaN weights is refused; --init beside a checkpoint says which one wins.
    @Test func nanWeightsAndIgnoredInit() throws {
        let nan = try tampered("nan") {
            $0.set("cls_head.fc_cls.bias", Tensor(shape: [6], values: [0, .nan, 0, 0, 0, 0]))
        }
        let r = try run("nleval", ["--ckpt", nan])
        #expect(r.status == 65 && r.stderr.contains("cls_head.fc_cls.bias holds NaN or infinite values"), "\(r.stderr)")
        let work = scratchDirectory("fault-init")
        let config = tinyRunConfig(workDirectory: work, epochs: 2)
        #expect(try run("nltrain", ["--config", config, "--max-time", "0"]).status == 75)
        let again = try run(
            "nltrain", ["--config", config, "--max-time", "0", "--init", "\(Self.trained)/iter_00000004.safetensors"])
        #expect(again.status == 75 && again.stdout.contains("not using --init"), "\(again.stdout)")
    }

    // MARK: Scripts stopped part-way

    static let scripts = "\(repositoryRoot)/scripts"

    /// Starts a script with a plain signal mask, sends it SIGTERM once `started` holds (as
    /// timeout or a scheduler would), and returns its exit status and stderr.
    func stopped(
        _ script: String, _ arguments: [String] = [], environment: [String: String] = [:],
        once started: () -> Bool
    ) throws -> (status: Int32, stderr: String) {
        let launched = try Launched(script, arguments, environment: environment, plainSignals: true)
        _ = launched.wait(until: started)
        let status = launched.signal(SIGTERM)
        return (status, launched.stderr)
    }

    /// A comparison script stopped while PyTorch's step runs stops at once and stops that run: it
    /// waited for the run to end (minutes, at the real shapes), and killed outright left it going.
    @Test func aStoppedComparisonStopsItsRun() throws {
        let dir = scratchDirectory("files", made: true), yardstick = "\(dir)/yardstick.py", pidFile = "\(dir)/pid"
        try "import os, time\nopen('\(pidFile)', 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
            .write(toFile: yardstick, atomically: true, encoding: .utf8)
        let start = Date()
        let r = try stopped(
            "\(Self.scripts)/bench/compare_step_with_pytorch.sh", ["1"],
            environment: ["YARDSTICK": yardstick, "SHAPES": "1 8 64"]
        ) {
            ((try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? "").isEmpty == false
        }
        #expect(
            r.status == 143 && r.stderr.contains("stopped by SIGTERM") && Date().timeIntervalSince(start) < 40,
            "\(r.stderr)")
        let pid = Int32(try String(contentsOfFile: pidFile, encoding: .utf8))!
        var gone = false
        for _ in 0..<100 where !gone {  // killed, then reaped by init
            let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.split(separator: " ")
                .dropFirst(2).first
            gone = state == nil || state == "Z"
            if !gone { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(gone, "the yardstick (pid \(pid)) still runs")
    }

    /// The demo's precision comparison stopped while a training runs stops at once, that training
    /// with it (the script waits for it to stop), and leaves none of its runs behind.
    @Test(.enabled(if: Precision.bf16.unavailable == nil))
    func aStoppedPrecisionComparisonStopsItsRunAndLeavesNothing() throws {
        let (temporary, data) = (scratchDirectory("tmp", made: true), syntheticDatasetDirectory)
        let settings = [
            "data.root=\(data)", "data.train_annotations=\(data)/train.csv", "data.val_annotations=\(data)/val.csv",
            "data.classes=\(data)/classes.txt", "data.clip_len=4", "train.epochs=100",
        ].flatMap { ["--set", $0] }
        let start = Date()
        let r = try stopped(
            "\(Self.scripts)/bench/compare_precisions_on_demo.sh", ["1"] + settings,
            environment: ["TMPDIR": temporary, "XDG_CACHE_HOME": scratchDirectory("cache", made: true)]
        ) {
            let runs = (try? FileManager.default.contentsOfDirectory(atPath: temporary)) ?? []
            return runs.contains { FileManager.default.fileExists(atPath: "\(temporary)/\($0)/fp32-seed0/train.log") }
        }
        #expect(
            r.status == 143 && r.stderr.contains("stopped by SIGTERM") && Date().timeIntervalSince(start) < 60,
            "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporary).isEmpty, "the runs are left behind")
    }

    /// The dataset scripts given what a stranger might type: a word, 0 seconds, an option without
    /// its value, no output folder, a source folder that is not there. Each is refused (64, or 66
    /// for the missing folder) with a line naming what is wrong, before anything is written.
    @Test func theDatasetScriptsRefuseAbsurdOptions() throws {
        let out = "\(scratchDirectory("files", made: true))/refused"
        let (synthetic, camera) = (
            "\(Self.scripts)/data/make_synthetic_dataset.sh", "\(Self.scripts)/data/make_camera_motion_dataset.sh"
        )
        let cases: [(script: String, arguments: [String], status: Int32, says: String)] = [
            (synthetic, [out, "--train", "abc"], 64, "--train 'abc' is not a whole number of at least 1"),
            (synthetic, [out, "--seconds", "0"], 64, "--seconds '0' is not a whole number of at least 1"),
            (synthetic, [out, "--val"], 64, "--val '' is not a whole number"),
            (synthetic, [out, "--frames", "3"], 64, "unknown option --frames"),
            (synthetic, [], 64, "usage: make_synthetic_dataset.sh OUT"),
            (camera, [testVideoDirectory, out, "--seconds", "-2"], 64, "--seconds '-2' is not a whole number"),
            (camera, [testVideoDirectory], 64, "usage: make_camera_motion_dataset.sh SOURCES OUT"),
            (camera, ["/nonexistent/videos", out], 66, "/nonexistent/videos is not a folder"),
        ]
        for c in cases {
            let r = try run(c.script, c.arguments)
            #expect(r.status == c.status && r.stderr.contains(c.says), "\(c.arguments): \(r.status) \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    /// The synthetic dataset stopped part-way leaves no CSV, so make demo (which checks for
    /// val.csv) makes it again rather than train on part of it; whole, it has both.
    @Test func aStoppedDatasetLeavesNoCSV() throws {
        let out = "\(scratchDirectory("files", made: true))/synthetic"
        let arguments = [out, "--train", "2", "--val", "1", "--seconds", "1"]
        let r = try stopped("\(Self.scripts)/data/make_synthetic_dataset.sh", arguments) {
            FileManager.default.fileExists(atPath: "\(out)/train/moving up")
        }
        #expect(r.status == 143, "\(r.stderr)")
        #expect(
            !FileManager.default.fileExists(atPath: "\(out)/train.csv")
                && !FileManager.default.fileExists(atPath: "\(out)/val.csv"))
        let whole = try run("\(Self.scripts)/data/make_synthetic_dataset.sh", arguments)
        #expect(whole.status == 0, "\(whole.stderr)")
        let rows = try ["train", "val"].map {
            try String(contentsOfFile: "\(out)/\($0).csv", encoding: .utf8).split(separator: "\n").count
        }
        #expect(rows == [13, 7])
    }

    /// A script's training run (make demo's) stopped: the script hands nltrain the SIGTERM and
    /// waits for it to stop on a checkpoint; it died at once and left nltrain training on.
    @Test func aStoppedScriptStopsItsTrainingOnACheckpoint() throws {
        let work = scratchDirectory("fault-script-stop"), script = "\(scratchDirectory("files", made: true))/train.sh"
        let config = tinyRunConfig(workDirectory: work, epochs: 30)
        try
            "#!/usr/bin/env bash\nset -euo pipefail\nsource \(Self.scripts)/common.sh\nstoppable \(commandDirectory)/nltrain --config \(config) > /dev/null\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let log = "\(work)/train.log"
        let r = try stopped(script) {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").components(separatedBy: "iter ").count >= 3
        }
        #expect(r.status == 143 && r.stderr.contains("stopped by SIGTERM"), "\(r.stderr)")
        // The signal may land mid-epoch, between epochs or in validation: each stops on a checkpoint.
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(text.contains("stopped by SIGTERM") && text.contains("run the same command to"), "\(text)")
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: work).filter {
            $0.hasPrefix("iter_") && $0.hasSuffix(".safetensors")
        }
        #expect(!checkpoints.isEmpty, "\(text)")
    }
}

/// A safetensors file from a header written by hand and `bytes` bytes of data.
func handMadeCheckpoint(_ header: String, bytes: Int) -> Data {
    var data = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Data($0) }
    data.append(Data(header.utf8))
    data.append(Data(count: bytes))
    return data
}
