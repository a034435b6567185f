import Foundation
import NLLayers
import NLTestSupport
import NLTrain
import Testing

/// Mixed precision through the commands, on a CPU with bfloat16 (elsewhere MachineCLITests holds
/// the refusal): the convolutions' algorithms timed once and kept in the cache folder, the kept
/// choice used without timing the next time and printed by nlbench verify, a choice timed while
/// other processes took the CPU not kept; a float32 checkpoint evaluated in bf16 by nleval gives
/// the same classes and probabilities within bfloat16's error. The test suites run side by side,
/// so the commands they start here time on a busy machine: NL_KEEP_CHOICE_WHEN_BUSY=1 has them
/// keep their choice where a test needs it kept.
struct BFloat16CLITests {
    static let keepWhenBusy = ["NL_KEEP_CHOICE_WHEN_BUSY": "1"]

    @Test(.enabled(if: Precision.bf16.unavailable == nil))
    func theChoiceIsTimedOnceKeptAndPrinted() throws {
        let cache = scratchDirectory("cache", made: true)
        let environment = ["XDG_CACHE_HOME": cache].merging(Self.keepWhenBusy) { $1 }
        let step = ["step", "--model", "nl_i3d_r50_tiny", "--steps", "1", "--precision", "bf16"]
        let first = try run("nlbench", step, environment: environment)
        #expect(first.status == 0 && first.stdout.contains(" bf16 threads="), "\(first.stderr)")
        #expect(
            first.stderr.contains("precision bf16: timing the own float32 paths against oneDNN's bfloat16")
                && first.stderr.contains("; their forward and backward ")
                && first.stderr.contains("timed now on the network's shapes (") && first.stderr.contains("; check "))
        let kept = try String(contentsOfFile: "\(cache)/nl-i3d/convolutions.txt", encoding: .utf8)
        let line = try #require(kept.split(separator: "\n").first { !$0.hasPrefix("#") })
        let fields = line.split(separator: "\t")
        #expect(fields.count == 3 && fields[1].allSatisfy { $0 == "o" || $0 == "b" } && fields[0].contains("oneDNN "))
        let second = try run("nlbench", step, environment: environment)
        #expect(
            second.status == 0
                && second.stderr.contains("(chosen on this machine before: \(cache)/nl-i3d/convolutions.txt)"))
        #expect(!second.stderr.contains("timed now"), "\(second.stderr)")
        let verify = try run("nlbench", ["verify"], environment: environment)
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(
            verify.stdout.contains("bfloat16 convolutions chosen on this machine for network ")
                && verify.stdout.contains(" on 2x8x112x112: "), "\(verify.stdout)")
    }

    /// nleval's and nlpredict's probabilities in bf16 within 0.02 of fp32's, each saying so; their
    /// convolutions chosen by forward passes alone, once: nleval times them, nlpredict (the same
    /// clip) finds the choice kept, apart from training's.
    @Test(.enabled(if: Precision.bf16.unavailable == nil))
    func nlevalAndNlpredictInBFloat16AgreeWithFloat32() throws {
        let work = scratchDirectory("bf16-eval")
        let config = tinyRunConfig(workDirectory: work, epochs: 1)
        let trained = try run("nltrain", ["--config", config])
        try #require(trained.status == 0, "\(trained.stderr)")
        var (evaluated, predicted): ([String: [[Double]]], [String: [[Double]]]) = ([:], [:])
        for precision in ["fp32", "bf16"] {
            let (dump, cache) = ("\(work)/\(precision).csv", scratchDirectory("cache", made: true))
            let environment = ["XDG_CACHE_HOME": cache].merging(Self.keepWhenBusy) { $1 }
            let options = ["--ckpt", "\(work)/best.safetensors", "--set", "train.precision=\(precision)"]
            let r = try run("nleval", options + ["--dump", dump], environment: environment)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.contains("nleval: precision bf16: ") == (precision == "bf16"), "\(r.stderr)")
            evaluated[precision] = try String(contentsOfFile: dump, encoding: .utf8).split(separator: "\n").dropFirst()
                .map { $0.split(separator: ",").suffix(6).compactMap { Double($0) } }
            let p = try run(
                "nlpredict", options + ["--json", "--top-k", "6", "\(syntheticDatasetDirectory)/val"],
                environment: environment)
            #expect(p.status == 0, "\(p.stderr)")
            #expect(p.stderr.contains("nlpredict: precision bf16: ") == (precision == "bf16"), "\(p.stderr)")
            if precision == "bf16" {
                #expect(r.stderr.contains("; their forward ") && r.stderr.contains("timed now"), "\(r.stderr)")
                #expect(r.stderr.contains("; check ") && !r.stderr.contains("FAILED"), "\(r.stderr)")
                #expect(p.stderr.contains("(chosen on this machine before: "), "\(p.stderr)")
                let kept = try String(contentsOfFile: "\(cache)/nl-i3d/convolutions.txt", encoding: .utf8)
                #expect(kept.contains(" forward only\t"), "\(kept)")
            }
            predicted[precision] = try p.stdout.split(separator: "\n").map { line in
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                let top = (object["top"] as! [[String: Any]]).sorted { ($0["index"] as! Int) < ($1["index"] as! Int) }
                return top.map { $0["score"] as! Double }
            }
        }
        for (name, scores) in [("nleval", evaluated), ("nlpredict", predicted)] {
            let (a, b) = (scores["fp32"]!, scores["bf16"]!)
            #expect(a.count == b.count && a.count == 6, "\(name): \(a.count) and \(b.count) videos")
            let largest = zip(a, b).map { zip($0, $1).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 1
            #expect(largest < 0.02, "\(name): probabilities differ by up to \(largest)")
        }
    }

    /// Timed on one core (taskset) that another process spins on too, so that the command's thread
    /// waits for it about half the time on a machine of any size, the choice is used but not kept:
    /// the next run times again. NL_KEEP_CHOICE_WHEN_BUSY=1 keeps it all the same. The core is the
    /// first this process may use: core 0 may lie outside a container's cpuset.
    @Test(.enabled(if: Precision.bf16.unavailable == nil))
    func aChoiceTimedOnABusyMachineIsNotKept() throws {
        let allowed = ((try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? "")
            .split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }
        let first = allowed?.dropFirst("Cpus_allowed_list:".count).drop { $0 == " " || $0 == "\t" }.prefix(
            while: \.isNumber)
        let core = first.map(String.init).flatMap { $0.isEmpty ? nil : $0 } ?? "0"
        let spinner = try Launched("/usr/bin/taskset", ["-c", core, "/bin/sh", "-c", "while :; do :; done"])
        defer { _ = spinner.signal(SIGKILL) }
        let step = ["step", "--model", "nl_i3d_r50_tiny", "--steps", "1", "--precision", "bf16"]
        for keep in [false, true] {
            let cache = scratchDirectory("cache", made: true)
            let environment = [
                "XDG_CACHE_HOME": cache, "NL_THREADS": "1", "NL_KEEP_CHOICE_WHEN_BUSY": keep ? "1" : "0",
            ]
            let r = try run(
                "/usr/bin/taskset", ["-c", core, "\(commandDirectory)/nlbench"] + step, environment: environment)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.contains("timed now on the network's shapes"), "\(r.stderr)")
            #expect(
                r.stderr.contains("(not kept: the machine was busy: its threads waited for a CPU ") != keep
                    && r.stderr.contains("% of the time; the next run times them again)")
                        != keep,
                "\(r.stderr)")
            #expect(FileManager.default.fileExists(atPath: "\(cache)/nl-i3d/convolutions.txt") == keep)
        }
    }

    /// A SIGTERM while the convolutions are timed (nl_i3d_r50, seconds) ends the timing at its
    /// next pass: the run stops before training with 75, nothing kept in the cache.
    @Test(.enabled(if: Precision.bf16.unavailable == nil))
    func aSignalStopsTheTiming() throws {
        let (work, cache) = (scratchDirectory("bf16-stopped"), scratchDirectory("cache", made: true))
        let config = tinyRunConfig(
            workDirectory: work,
            extra:
                "[model]\nname = nl_i3d_r50\nbase_channels = 64\nnum_classes = 6\n[data]\nclip_len = 8\ntrain_short_side = 112\n"
                + "crop_size = 112\ntest_short_side = 112\n[train]\nprecision = bf16")
        let launched = try Launched("nltrain", ["--config", config], environment: ["XDG_CACHE_HOME": cache])
        #expect(
            launched.wait(until: { launched.stdout.contains("precision bf16: timing the own float32 paths") }),
            "\(launched.stdout)")
        let status = launched.signal(SIGTERM)
        #expect(status == 75, "\(launched.stderr)")
        #expect(launched.stdout.contains("precision bf16: stopped before the convolutions were timed; nothing kept"))
        #expect(launched.stdout.contains("stopped by SIGTERM before training"), "\(launched.stdout)")
        #expect(!FileManager.default.fileExists(atPath: "\(cache)/nl-i3d/convolutions.txt"))
    }
}
