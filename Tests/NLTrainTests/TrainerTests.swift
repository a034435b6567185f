import Foundation
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLLayers
import NLModels
import NLTensor
import NLVideo

struct TrainerTests {
    let quiet = FileHandle(forWritingAtPath: "/dev/null")!

    func train(_ workDirectory: String, maxTime: Double? = nil, extra: String = "") throws -> NLTrain.ExitStatus {
        var options = Trainer.Options()
        options.maxTime = maxTime
        let config = try Config(path: tinyRunConfig(workDirectory: workDirectory, extra: extra))
        return try Trainer(config: config, options: options, output: quiet).run()
    }

    func lastCheckpoint(_ workDirectory: String) throws -> SafeTensors {
        let name = try String(contentsOfFile: "\(workDirectory)/last_checkpoint", encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
        return try SafeTensors(contentsOf: "\(workDirectory)/\(name)")
    }

    /// Stopping after every iteration (the time budget spent at once) and resuming gives, bit for
    /// bit, the weights, momentum, running statistics and best checkpoint of an uninterrupted run.
    @Test func resumingEveryIterationGivesTheUninterruptedWeights() throws {
        let straight = scratchDirectory("straight"), stopped = scratchDirectory("stopped")
        #expect(try train(straight) == .done)
        var invocations = 0
        while try train(stopped, maxTime: 0) == .notFinished { invocations += 1 }
        #expect(invocations == 7, "a stop after each of 2 x 4 batches but the last")
        let (a, b) = (try lastCheckpoint(straight), try lastCheckpoint(stopped))
        #expect(a.names == b.names && a.names.contains { $0.hasPrefix("optimizer.") })
        let differing = a.names.filter { a.entries[$0]!.bytes != b.entries[$0]!.bytes }
        #expect(differing.isEmpty, "differ: \(differing.prefix(5))")
        for key in ["epoch", "iteration", "global_iteration", "finished", "best_top1"] {
            #expect(
                a.metadata[key] == b.metadata[key], "\(key): \(a.metadata[key] ?? "-") vs \(b.metadata[key] ?? "-")")
        }
        let (bestA, bestB) = (
            try SafeTensors(contentsOf: "\(straight)/best.safetensors"),
            try SafeTensors(contentsOf: "\(stopped)/best.safetensors")
        )
        #expect(bestA.names.allSatisfy { bestA.entries[$0]!.bytes == bestB.entries[$0]?.bytes })
        // A finished run has nothing left to do.
        #expect(try train(stopped) == .done)

        // TensorBoard: a file a run; each resumed run's file starts a session after its
        // checkpoint, and every training step is logged exactly once over the files.
        let files = try tensorBoardFiles(stopped)
        #expect(files.count == invocations + 1, "one for each run that trained")
        var steps: [Int] = []
        for (k, events) in try files.map(readEventFile).enumerated() {
            let start = events.first { $0.sessionStart }?.step
            #expect(
                k == 0 ? start == nil : start == (steps.last ?? 0) + 1,
                "file \(k) starts a session after the step before")
            steps += events.filter { $0.scalars["train/loss"] != nil }.map(\.step)
        }
        #expect(steps == Array(1...8))
    }

    /// In bfloat16 precision too, stopping after every iteration and resuming gives the
    /// uninterrupted run's weights, bit for bit; the checkpoints stay float32 and an fp32 run
    /// resumes from them. Where the CPU has no bfloat16, the config is refused instead.
    @Test func bfloat16RunsResumeBitExactly() throws {
        let bf16 = "[train]\nprecision = bf16"
        guard Precision.bf16.unavailable == nil else {
            #expect(throws: ConfigError.self) { try train(scratchDirectory("refused"), extra: bf16) }
            return
        }
        let straight = scratchDirectory("bf16-straight"), stopped = scratchDirectory("bf16-stopped")
        #expect(try train(straight, extra: bf16) == .done)
        while try train(stopped, maxTime: 0, extra: bf16) == .notFinished {}
        let (a, b) = (try lastCheckpoint(straight), try lastCheckpoint(stopped))
        let differing = a.names.filter { a.entries[$0]!.bytes != b.entries[$0]!.bytes }
        #expect(differing.isEmpty, "differ: \(differing.prefix(5))")
        #expect(a.names.allSatisfy { a.entries[$0]!.dtype == .f32 || !a.entries[$0]!.dtype.isFloatingPoint })
        // The same run in float32 differs (the convolutions round), and goes on from bf16's checkpoints.
        let float32 = scratchDirectory("fp32-straight")
        #expect(try train(float32) == .done)
        let c = try lastCheckpoint(float32)
        #expect(a.names.contains { a.entries[$0]!.bytes != c.entries[$0]!.bytes })
        var more = Trainer.Options()
        more.resume =
            "\(straight)/\(try String(contentsOfFile: "\(straight)/last_checkpoint", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))"
        let extended = try Config(path: tinyRunConfig(workDirectory: scratchDirectory("fp32-from-bf16"), epochs: 3))
        #expect(try Trainer(config: extended, options: more, output: quiet).run() == .done)
    }

    /// The work directory's TensorBoard files, oldest first.
    func tensorBoardFiles(_ workDirectory: String) throws -> [String] {
        func order(_ name: String) -> [Int] {
            let parts = name.split(separator: "."); return [Int(parts[3]) ?? 0, Int(parts.last!) ?? 0]
        }
        // In the work directory itself: TensorBoard names the run after it.
        return try FileManager.default.contentsOfDirectory(atPath: workDirectory).filter {
            $0.hasPrefix("events.out.tfevents.")
        }.sorted { order($0).lexicographicallyPrecedes(order($1)) }
            .map { "\(workDirectory)/\($0)" }
    }

    /// The work directory after a run: the resolved config, logs, metrics, the last and best
    /// checkpoints, the pointer, and no more periodic checkpoints than keep_checkpoints.
    @Test func workDirectoryContents() throws {
        let dir = scratchDirectory("contents")
        #expect(try train(dir) == .done)
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
        #expect(
            files.isSuperset(of: ["config.cfg", "train.log", "metrics.jsonl", "last_checkpoint", "best.safetensors"]))
        #expect(!files.contains("lock"), "a run that ended leaves no lock file, which would read as one under way")
        #expect(files.filter { $0.hasPrefix("iter_") }.count == 2)
        let metrics = try String(contentsOfFile: "\(dir)/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let train = metrics.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .filter { $0["mode"] as? String == "train" }
        #expect(train.count == 8)
        for key in [
            "epoch", "iteration", "lr", "loss", "top1", "data_time", "step_time", "clips_per_s", "eta_s", "rss_mib",
        ] {
            #expect(train.allSatisfy { $0[key] != nil }, "metrics.jsonl lacks \(key)")
        }
        #expect(metrics.filter { $0.contains("\"mode\":\"val\"") }.count == 2)
        // TensorBoard: the config as text, the six training scalars at every logged step, the
        // validation's four after each epoch; curves.svg drawn from metrics.jsonl: five lines
        // (training and validation loss, lr, training and validation top-1) and the best epoch.
        let events = try readEventFile(try tensorBoardFiles(dir)[0])
        #expect(events[0].fileVersion == "brain.Event:2" && events[1].texts["config"]?.contains("[train]") == true)
        let trainTags: Set = [
            "train/loss", "train/lr", "train/top1", "train/data_time", "train/step_time", "train/clips_per_s",
            "train/batch",
        ]
        #expect(events.filter { Set($0.scalars.keys) == trainTags }.map(\.step) == Array(1...8))
        #expect(events.filter { $0.scalars["val/top1"] != nil }.map(\.step) == [4, 8])
        #expect(events.filter { $0.scalars["val/loss"] != nil }.map(\.step) == [4, 8])
        #expect(metrics.filter { $0.contains("\"mode\":\"val\"") && $0.contains("\"loss\":") }.count == 2)
        #expect(events.allSatisfy { e in e.scalars.values.allSatisfy(\.isFinite) })
        let curves = try String(contentsOfFile: "\(dir)/curves.svg", encoding: .utf8)
        #expect(
            wellFormed(curves) && curves.components(separatedBy: "<polyline").count == 6
                && curves.contains("validation") && curves.contains(">best "))

        let checkpoint = try lastCheckpoint(dir)
        let config = try Checkpoint(path: dir + "/" + "x", file: checkpoint).config()
        #expect(config.train.batchSize == 4 && config.data.clipLength == 4, "the checkpoint holds the resolved config")
    }

    /// A corrupt newest checkpoint is refused by name and the one before it used; --resume takes
    /// a given checkpoint; --init takes weights alone and starts at the beginning.
    @Test func corruptCheckpointsResumeAndInit() throws {
        let dir = scratchDirectory("corrupt")
        var options = Trainer.Options()
        options.maxTime = 0
        let config = try Config(path: tinyRunConfig(workDirectory: dir))
        let log = Pipe()
        for _ in 0..<2 { #expect(try Trainer(config: config, options: options, output: quiet).run() == .notFinished) }
        let newest = "\(dir)/iter_00000002.safetensors"
        let whole = try Data(contentsOf: URL(fileURLWithPath: newest))
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: newest))
        #expect(try Trainer(config: config, options: options, output: log.fileHandleForWriting).run() == .notFinished)
        try log.fileHandleForWriting.close()
        let text = String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(
            text.contains("refusing \(newest)") && text.contains("resuming from \(dir)/iter_00000001.safetensors"),
            "\(text)")

        let other = scratchDirectory("resume")
        var resume = Trainer.Options()
        (resume.resume, resume.maxTime) = ("\(dir)/iter_00000001.safetensors", 0)
        #expect(
            try Trainer(config: try Config(path: tinyRunConfig(workDirectory: other)), options: resume, output: quiet)
                .run() == .notFinished)
        #expect(try SafeTensors(contentsOf: "\(other)/iter_00000002.safetensors").metadata["global_iteration"] == "2")

        let fresh = scratchDirectory("init")
        var initial = Trainer.Options()
        (initial.initialWeights, initial.maxTime) = ("\(dir)/iter_00000001.safetensors", 0)
        #expect(
            try Trainer(config: try Config(path: tinyRunConfig(workDirectory: fresh)), options: initial, output: quiet)
                .run() == .notFinished)
        #expect(
            try SafeTensors(contentsOf: "\(fresh)/iter_00000001.safetensors").metadata["global_iteration"] == "1",
            "--init starts at the beginning")
    }
}
