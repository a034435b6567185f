import Foundation
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLLayers
import NLTensor
import NLVideo

/// nltrain and nleval as cron and users run them: end to end on the small synthetic dataset, the
/// exit codes, the lock, signals.
struct NLTrainCLITests {
    @Test func trainThenEvaluate() throws {
        let work = scratchDirectory("cli-train")
        let config = tinyRunConfig(workDirectory: work)
        let trained = try run("nltrain", ["--config", config])
        #expect(trained.status == 0, "\(trained.stderr)")
        #expect(trained.stdout.contains("validation: top-1") && trained.stdout.contains("finished 2 epochs"))
        #expect(trained.stdout.contains("iter 4/4 lr") && trained.stdout.contains("clips/s eta"))

        let json = "\(work)/eval.json", dump = "\(work)/scores.csv", report = "\(work)/report.svg"
        // 10x3 views, the paper's test, in batches of 4: a video's views span batches.
        let evaluated = try run(
            "nleval",
            [
                "--ckpt", "\(work)/best.safetensors", "--views", "10x3", "--json", json, "--dump", dump, "--report",
                report,
            ])
        #expect(evaluated.status == 0, "\(evaluated.stderr)")
        #expect(evaluated.stdout.contains("10x3 views: top-1"))
        let metrics =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as! [String: Any]
        #expect(metrics["videos"] as? Int == 6 && metrics["failed"] as? Int == 0)
        for key in ["top1", "top5", "mean_class_accuracy"] { #expect(metrics[key] is Double) }
        #expect((metrics["per_class"] as? [[String: Any]])?.count == 6)
        #expect(try String(contentsOfFile: dump, encoding: .utf8).split(separator: "\n").count == 7)
        let picture = try String(contentsOfFile: report, encoding: .utf8)
        #expect(picture.hasPrefix("<svg") && picture.contains("moving left") && picture.contains("confusion matrix"))
        #expect(
            try run("nleval", ["--ckpt", "\(work)/best.safetensors", "--report", "\(work)/report.html"]).status == 0)
        #expect(try String(contentsOfFile: "\(work)/report.html", encoding: .utf8).contains("<h3>Per-class top-1</h3>"))

        // Run again: finished, nothing to do.
        let again = try run("nltrain", ["--config", config])
        #expect(again.status == 0 && again.stdout.contains("nothing to do"))
    }

    /// Broken and missing videos in training: listed, skipped, and the run goes on.
    @Test func brokenVideosAreSkippedAndListed() throws {
        let work = scratchDirectory("cli-broken")
        let config = tinyRunConfig(workDirectory: work, epochs: 1)
        let r = try run(
            "nltrain",
            [
                "--config", config, "--set",
                "data.train_annotations=\(syntheticDatasetDirectory)/train_with_problems.csv",
                "--set", "train.max_bad_fraction=0.2",
            ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("train_with_problems.csv:21") && r.stdout.contains("1 missing"))
        let bad = try String(contentsOfFile: "\(work)/bad_videos.txt", encoding: .utf8)
        #expect(bad.contains("BROKENVIDEO"))
        // Past max_bad_fraction the run stops with exit 65.
        let strict = try run(
            "nltrain",
            [
                "--config", tinyRunConfig(workDirectory: scratchDirectory("cli-strict"), epochs: 1),
                "--set", "data.train_annotations=\(syntheticDatasetDirectory)/train_with_problems.csv",
                "--set", "train.max_bad_fraction=0.01",
            ])
        #expect(strict.status == 65 && strict.stderr.contains("max_bad_fraction"), "\(strict.stderr)")
    }

    @Test func exitCodes() throws {
        let config = tinyRunConfig(workDirectory: scratchDirectory("cli-codes"), epochs: 1)
        let typo = try run("nltrain", ["--config", config, "--set", "train.lr_step=3"])
        #expect(typo.status == 64 && typo.stderr.contains("did you mean 'lr_steps'?"))
        let noAnnotations = try run(
            "nltrain", ["--config", config, "--set", "data.train_annotations=/nonexistent/train.csv"])
        #expect(
            noAnnotations.status == 65 && noAnnotations.stderr.contains("/nonexistent/train.csv"),
            "\(noAnnotations.stderr)")
        let unwritable = try run("nltrain", ["--config", config, "--set", "train.work_dir=/proc/nl-work"])
        #expect(unwritable.status == 74 && unwritable.stderr.contains("/proc/nl-work"), "\(unwritable.stderr)")
        let notCheckpoint = try run("nleval", ["--ckpt", config])
        #expect(notCheckpoint.status == 65 && notCheckpoint.stderr.contains(config), "\(notCheckpoint.stderr)")
        let printed = try run("nltrain", ["--print-config", "--config", config])
        #expect(
            printed.status == 0 && printed.stdout.contains("max_bad_fraction = ")
                && printed.stdout.contains("base_channels = 4"))
    }

    /// A second run on a work directory another holds exits 75 at once, naming the holder.
    @Test func theLockKeepsASecondRunOut() throws {
        let work = scratchDirectory("cli-lock")
        let holder = try WorkDirectory(work)
        try holder.lock()
        let r = try run("nltrain", ["--config", tinyRunConfig(workDirectory: work, epochs: 1)])
        #expect(r.status == 75 && r.stderr.contains("pid \(getpid())"), "\(r.stderr)")
    }

    /// SIGTERM (as a scheduler sends before killing) and the time budget stop after a checkpoint
    /// with exit 75; the same command then continues to the end.
    @Test func sigtermAndTheTimeBudgetStopAfterACheckpoint() throws {
        let work = scratchDirectory("cli-signal")
        let config = tinyRunConfig(workDirectory: work, epochs: 30)  // long enough to be running when the signal comes
        let budget = try run("nltrain", ["--config", config, "--max-time", "0s"])
        #expect(budget.status == 75 && budget.stdout.contains("stopped by the time budget"), "\(budget.stderr)")

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "\(commandDirectory)/nltrain")
        process.arguments = ["--config", config]
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let log = "\(work)/train.log"
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline,
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").components(separatedBy: "iter ").count < 3
        {
            Thread.sleep(forTimeInterval: 0.05)
        }
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus == 75)
        #expect(try String(contentsOfFile: log, encoding: .utf8).contains("stopped by SIGTERM"))
        let resumed = try run("nltrain", ["--config", config, "--max-time", "0"])
        #expect(resumed.status == 75 && resumed.stdout.contains("resuming from \(work)/iter_"), "\(resumed.stderr)")
    }

    /// A run resumed with an edited config goes on with it, as mmaction2's does, and says which
    /// values differ from the checkpoint's; resumed unchanged, it says nothing of the kind.
    @Test func aResumedRunNamesTheValuesItChanges() throws {
        let work = scratchDirectory("cli-changed")
        let config = tinyRunConfig(workDirectory: work, epochs: 30)
        #expect(try run("nltrain", ["--config", config, "--max-time", "0"]).status == 75)
        let changed = try run(
            "nltrain", ["--config", config, "--max-time", "0", "--set", "train.lr=0.02", "--set", "data.crop_size=24"])
        #expect(
            changed.status == 75
                && changed.stdout.contains(
                    "going on with a config that differs from the checkpoint's: data.crop_size = 24 (was 32), train.lr = 0.02 (was 0.05)"
                ),
            "\(changed.stdout)")
        let same = try run(
            "nltrain", ["--config", config, "--max-time", "0", "--set", "train.lr=0.02", "--set", "data.crop_size=24"])
        #expect(
            same.status == 75 && same.stdout.contains("resuming from") && !same.stdout.contains("differs"),
            "\(same.stdout)")
    }

    /// SIGHUP (the terminal or ssh session closed) stops after a checkpoint as SIGTERM does; it
    /// killed the run, losing the work since the last one.
    /// Under nohup, which asks the run to outlive its terminal, SIGHUP is left ignored. (Started
    /// with SIGHUP set as nohup and a shell set it, whatever the test runner's is.)
    @Test(arguments: [false, true]) func sighupStopsAfterACheckpointUnlessNohup(nohup: Bool) throws {
        let work = scratchDirectory("cli-hangup")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            "import os, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_IGN if sys.argv[1] == 'nohup' else signal.SIG_DFL); "
                + "signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGHUP]); os.execv(sys.argv[2], sys.argv[2:])",
            nohup ? "nohup" : "shell", "\(commandDirectory)/nltrain", "--config",
            tinyRunConfig(workDirectory: work, epochs: nohup ? 3 : 30),
        ]
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let log = "\(work)/train.log"
        while process.isRunning,
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").components(separatedBy: "iter ").count < 3
        {
            Thread.sleep(forTimeInterval: 0.02)
        }
        kill(process.processIdentifier, SIGHUP)
        process.waitUntilExit()
        let text = try String(contentsOfFile: log, encoding: .utf8)
        if nohup {
            #expect(
                process.terminationReason == .exit && process.terminationStatus == 0
                    && text.contains("finished 3 epochs"), "\(text)")
        } else {
            #expect(process.terminationReason == .exit && process.terminationStatus == 75, "\(text)")
            #expect(text.contains("stopped by SIGHUP") && text.contains("run the same command to"), "\(text)")
        }
    }

    /// An output that fails (a full disk, a pipe whose reader has gone: `| head`, or `| tee`
    /// stopped by the same Ctrl-C) loses lines, not the run: it crashed (FileHandle.write) or
    /// died of SIGPIPE before its next checkpoint. train.log keeps every line.
    @Test func aFailingOutputDoesNotStopTraining() throws {
        for output in ["/dev/full", "a closed pipe"] {
            let work = scratchDirectory("cli-output")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "\(commandDirectory)/nltrain")
            process.arguments = ["--config", tinyRunConfig(workDirectory: work, epochs: 2)]
            let pipe = Pipe()
            process.standardOutput = output == "/dev/full" ? FileHandle(forWritingAtPath: "/dev/full") : pipe
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try process.run()
            try pipe.fileHandleForReading.close()
            process.waitUntilExit()
            let text = (try? String(contentsOfFile: "\(work)/train.log", encoding: .utf8)) ?? ""
            #expect(process.terminationReason == .exit && process.terminationStatus == 0, "\(output): \(text)")
            #expect(text.contains("iter 4/4") && text.contains("finished 2 epochs"), "\(output): \(text)")
        }
    }

    /// SIGTERM during a long validation (many views in small batches) stops it at once; the
    /// epoch's checkpoint was written before it, and the next run validates before training on.
    @Test(.timeLimit(.minutes(2))) func sigtermDuringValidationStopsPromptlyAndLosesNothing() throws {
        let work = scratchDirectory("cli-val-signal")
        let config = tinyRunConfig(workDirectory: work, epochs: 2, extra: "num_clips = 64\n[data]\ntest_crop = three")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "\(commandDirectory)/nltrain")
        process.arguments = ["--config", config, "--set", "eval.batch_size=3", "--set", "train.precise_bn_batches=0"]
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let log = "\(work)/train.log"
        while process.isRunning,
            !((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("validating epoch 1")
        {
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus == 75)
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(
            text.contains("stopped by SIGTERM during epoch 1's validation") && !text.contains("epoch 1 validation:"),
            "\(text)")
        let saved = try SafeTensors(contentsOf: "\(work)/iter_00000004.safetensors")
        #expect(saved.metadata["epoch"] == "1" && saved.metadata["validation_pending"] == "true")

        let resumed = try run(
            "nltrain",
            [
                "--config", config, "--max-time", "0", "--set", "eval.batch_size=7", "--set",
                "train.precise_bn_batches=0",
            ])
        #expect(resumed.status == 75, "\(resumed.stderr)")
        #expect(
            resumed.stdout.contains("epoch 1 validation: top-1") && resumed.stdout.contains("(6 videos, 0 failed)"),
            "\(resumed.stdout)")
        let validated = try SafeTensors(contentsOf: "\(work)/iter_00000004.safetensors")
        #expect(validated.metadata["validation_pending"] == nil && validated.metadata["best_top1"] != nil)
    }
}
