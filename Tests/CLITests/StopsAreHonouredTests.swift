import Foundation
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLDistributed
import NLLayers
import NLTensor
import NLVideo

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

    func expectBadVideos(
        in work: String, naming words: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let list = try String(contentsOfFile: "\(work)/bad_videos.txt", encoding: .utf8)
        #expect(list.contains(words), "\(list)", sourceLocation: sourceLocation)
    }

    /// A FIFO named like a video (the stand-in for a stalled NFS or FUSE read) is no video: named
    /// in bad_videos.txt and passed over. It stopped training after 2 iterations, deaf to SIGTERM.
    @Test func aFIFOAmongTheVideosIsSkippedAndNamed() throws {
        let work = scratchDirectory("stop-fifo")
        let r = try run("nltrain", config(work))
        #expect(r.status == 0, "\(r.stderr)")
        try expectBadVideos(in: work, naming: "pipe.mp4: is a FIFO (named pipe), not a video file")
    }

    /// A read that stalls past data.read_timeout is a broken video: named, replaced, and the
    /// epoch ends.
    @Test func aStalledReadIsABrokenVideo() throws {
        let work = scratchDirectory("stop-stall")
        let r = try run(
            "nltrain", config(work) + ["--set", "data.read_timeout=1"],
            environment: ["NL_SIMULATE_STALLED_READ": "moving up"])
        #expect(r.status == 0 && r.stdout.contains("finished 1 epochs"), "\(r.stdout)\(r.stderr)")
        try expectBadVideos(in: work, naming: "reading stalled for more than 1 s (data.read_timeout)")
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
