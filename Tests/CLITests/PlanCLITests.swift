import Foundation
import NLTestSupport
import Testing

/// nltrain --plan: what a run will take, measured before it, writing nothing; its peak memory
/// against the run's own. (Its times are compared with real runs in the closing notes, not here:
/// a loaded machine moves them.)
struct PlanCLITests {
    @Test func planMeasuresWhatTheRunTakes() throws {
        let work = scratchDirectory("plan")
        let config = tinyRunConfig(workDirectory: work, epochs: 2)
        let r = try run("nltrain", ["--config", config, "--plan", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let plan = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        for key in [
            "peak_rss_bytes", "step_seconds", "epoch_seconds", "run_seconds", "max_batch_size", "bytes_per_clip",
            "memory_available_bytes", "iteration_seconds", "validation_seconds",
        ] {
            #expect((plan[key] as? Double ?? 0) > 0, "\(key) in \(r.stdout)")
        }
        #expect(plan["videos"] as? Int == 19 || (plan["videos"] as? Int ?? 0) > 0)
        #expect(plan["iterations_per_epoch"] as? Int == 4 && plan["validations"] as? Int == 2, "\(r.stdout)")
        #expect(!FileManager.default.fileExists(atPath: work), "a plan writes nothing")

        let trained = try run("nltrain", ["--config", config])
        let peak = try #require(
            trained.stdout.firstMatch(of: /peak memory (\d+) MiB/).flatMap { Double($0.1) }, "\(trained.stdout)")
        let planned = (plan["peak_rss_bytes"] as! Double) / 1_048_576
        #expect(abs(planned - peak) <= 0.2 * peak, "planned \(planned) MiB, the run's peak \(peak) MiB")

        let text = try run("nltrain", ["--config", config, "--plan"])
        #expect(text.status == 0 && text.stdout.contains("the largest batch_size that fits"), "\(text.stdout)")
        let misuse = try run("nltrain", ["--config", config, "--json"])
        #expect(misuse.status == 64 && misuse.stderr.contains("--json is for --plan"))
    }

    /// batch_size = auto: measured at the start of a run (here the 18 training videos bound it, at
    /// accumulate 2 nine), written into the work directory's config, and kept by a resumed run
    /// without measuring again.
    @Test func batchSizeAutoIsMeasuredOnceAndKept() throws {
        let work = scratchDirectory("auto-batch")
        let config = tinyRunConfig(workDirectory: work, epochs: 1)
        let auto = ["--config", config, "--set", "train.batch_size=auto", "--set", "train.accumulate=2"]
        let first = try run("nltrain", auto)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(
            first.stdout.contains("batch_size auto: 9 (") && first.stdout.contains("(batch 9 x 2 accumulated = 18)"))
        let written = try String(contentsOfFile: "\(work)/config.cfg", encoding: .utf8)
        #expect(written.contains("\nbatch_size = 9\n"), "\(written)")
        let resumed = try run("nltrain", auto + ["--set", "train.epochs=2"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("batch_size auto: 9, the batch of the run it resumes"), "\(resumed.stdout)")
        #expect(
            !resumed.stdout.contains("MiB a clip")
                && !resumed.stdout.contains("differs from the checkpoint's: train.batch_size"))
        let printed = try run("nltrain", ["--config", config, "--set", "train.batch_size=auto", "--print-config"])
        #expect(printed.stdout.contains("\nbatch_size = auto\n"))
        let wrong = try run("nltrain", ["--config", config, "--set", "train.batch_size=atuo", "--print-config"])
        #expect(
            wrong.status == 64 && wrong.stderr.contains("train.batch_size: expected auto or a whole number, got 'atuo'")
        )
    }

    /// A SIGTERM while batch_size = auto is measured (a larger clip, so that it takes a while)
    /// stops the run before training, with 75 and words for a run, not a plan; no checkpoint.
    @Test func aSignalStopsTheAutoBatchMeasurement() throws {
        let work = scratchDirectory("auto-stopped")
        let config = tinyRunConfig(
            workDirectory: work,
            extra: "[data]\nclip_len = 32\ntrain_short_side = 160\ncrop_size = 160\ntest_short_side = 160")
        let launched = try Launched("nltrain", ["--config", config, "--set", "train.batch_size=auto"])
        #expect(launched.wait(until: { launched.stdout.contains("self-check") }), "\(launched.stdout)")
        let status = launched.signal(SIGTERM)
        #expect(status == 75, "\(launched.stderr)")
        #expect(
            launched.stderr.contains(
                "stopped by SIGTERM while measuring batch_size auto, before training; run the same command to continue"),
            "\(launched.stdout)\(launched.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(work)/last_checkpoint"))
    }

    /// A SIGTERM while the plan runs its steps (a larger clip, so that it takes a while) ends it
    /// at the next step with 75, nothing written.
    @Test func aSignalStopsAPlan() throws {
        let work = scratchDirectory("plan-stopped")
        let config = tinyRunConfig(
            workDirectory: work,
            extra: "[data]\nclip_len = 32\ntrain_short_side = 160\ncrop_size = 160\ntest_short_side = 160")
        let launched = try Launched("nltrain", ["--config", config, "--plan"])
        #expect(launched.wait(until: { launched.stderr.contains("validation set") }), "\(launched.stderr)")
        let status = launched.signal(SIGTERM)
        #expect(status == 75, "\(launched.stderr)")
        #expect(launched.stderr.contains("stopped by SIGTERM before the plan was measured; nothing was written"))
        #expect(!FileManager.default.fileExists(atPath: work))
    }
}
