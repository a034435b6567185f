import Foundation
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLLayers
import NLTensor
import NLVideo

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
        let crafted = "\(scratchDirectory("files", made: true))/crafted.safetensors"
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
        let files = try FileManager.default.contentsOfDirectory(atPath: work).filter {
            $0.hasPrefix("events.out.tfevents.")
        }.sorted()
        #expect(files.count == 2)
        let resumed = try readEventFile("\(work)/\(files[1])")
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
