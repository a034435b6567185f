import Foundation
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLDistributed
import NLLayers
import NLModels
import NLTensor
import NLVideo

/// Runs a built command as `processes` ranks of an Open MPI job on this machine.
func mpirun(
    _ processes: Int, _ command: String, _ arguments: [String], environment: [String: String] = [:]
) throws -> CommandResult {
    try run(
        "/usr/bin/mpirun", ["-np", "\(processes)", "--oversubscribe", "\(commandDirectory)/\(command)"] + arguments,
        environment: mpiEnvironment.merging(environment) { $1 })
}

/// Open MPI refuses to run as root unless told to (CI runs as root); in a container its
/// shared-memory transport may not read another process's memory directly, so it copies.
let mpiEnvironment = [
    "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
]

/// The model tensors and momentum of a work directory's last checkpoint.
func lastCheckpoint(_ workDirectory: String) throws -> SafeTensors {
    let name = try String(contentsOfFile: "\(workDirectory)/last_checkpoint", encoding: .utf8).trimmingCharacters(
        in: .whitespacesAndNewlines)
    return try SafeTensors(contentsOf: "\(workDirectory)/\(name)")
}

/// The processes whose command line holds `program` and `argument` (from /proc).
func processes(running program: String, with argument: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard let line = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let words = line.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return words.first?.hasSuffix("/\(program)") == true && words.contains(argument)
    }
}

/// `mpirun -np N nltrain`: each rank trains on its share of every batch, gradients averaged.
struct DataParallelTests {
    /// One epoch of the tiny run (4 iterations), dropout off so that no draw depends on the rank,
    /// at a learning rate where its training is smooth: at the tiny run's 0.05 it is chaotic (one
    /// process on 1 thread and on 2, which add in another order, end 7e-3 apart after 4 steps;
    /// at 0.005, 3e-7), and no comparison of two summation orders could be closer.
    func config(_ workDirectory: String, batch: Int, _ extra: [String]) -> [String] {
        [
            "--config", tinyRunConfig(workDirectory: workDirectory, epochs: 1), "--set", "model.dropout=0", "--set",
            "train.batch_size=\(batch)",
            "--set", "train.lr=0.005", "--set", "train.eval_every=0", "--set", "train.precise_bn_batches=0",
        ] + extra.flatMap { ["--set", $0] }
    }

    /// A way to train on the same 4 clips an iteration: processes, clips each takes at once
    /// (batch_size), micro-batches summed (accumulate), and what the log says of it.
    struct Split: Sendable, CustomTestStringConvertible {
        let processes: Int, batch: Int, accumulate: Int, settings: [String], says: String
        var testDescription: String { "\(processes) x \(batch) x \(accumulate) \(settings.joined(separator: " "))" }
    }

    /// 2 ranks of batch 2 give the weights of 1 process of batch 4 (the same clips: the loader
    /// deals every batch's videos to the ranks in turn), to 1e-5: with BatchNorm on running
    /// statistics, and with synchronised BatchNorm, whose statistics are the global batch's. So do
    /// 2 micro-batches of 2 summed (train.accumulate), alone and on each of 2 ranks, with
    /// BatchNorm on running statistics (training BatchNorm sees each micro-batch: not the same).
    @Test(arguments: [
        Split(
            processes: 2, batch: 2, accumulate: 1, settings: ["model.norm_eval=true"],
            says: "batch 2 on each of 2 processes, 4 in all"),
        Split(
            processes: 2, batch: 2, accumulate: 1, settings: ["train.sync_bn=true"],
            says: "batch 2 on each of 2 processes, 4 in all"),
        Split(
            processes: 1, batch: 2, accumulate: 2, settings: ["model.norm_eval=true"],
            says: "batch 2 x 2 accumulated = 4)"),
        Split(
            processes: 2, batch: 1, accumulate: 2, settings: ["model.norm_eval=true"],
            says: "batch 1 x 2 accumulated = 2 on each of 2 processes, 4 in all"),
    ])
    func splitsOfTheBatchTrainAsOneProcessOfAllOfIt(_ split: Split) throws {
        let settings = split.settings
        let (one, two) = (scratchDirectory("dp-one"), scratchDirectory("dp-two"))
        let alone = try run("nltrain", config(one, batch: 4, settings))
        #expect(alone.status == 0, "\(alone.stderr)")
        let arguments = config(two, batch: split.batch, settings + ["train.accumulate=\(split.accumulate)"])
        let job =
            split.processes == 1 ? try run("nltrain", arguments) : try mpirun(split.processes, "nltrain", arguments)
        #expect(job.status == 0, "\(job.stderr)")
        #expect(job.stdout.contains(split.says), "\(job.stdout)")
        let (a, b) = (try lastCheckpoint(one), try lastCheckpoint(two))
        #expect(a.names == b.names)
        // To 1e-5: the weights and running statistics (of their size, or absolute below 1: some
        // biases are zero in exact arithmetic, and hold rounding noise), and what training
        // changed of the weights, over the whole network.
        let initial = Recognizer(
            spec: try Config(
                path: nil,
                overrides: [
                    "model.name=nl_i3d_r18_small", "model.base_channels=4",
                    "model.num_classes=6",
                ] + settings.filter { $0.hasPrefix("model.") }
            ).model.spec)
        var start = SafeTensors()
        initial.save(into: &start)
        let learned = Set(initial.parameters.map(\.name))
        var (worst, name, statistics, difference, change) = (Float(0), "", Float(0), 0.0, 0.0)
        for key in a.names where a.entries[key]!.dtype == .f32 && !key.hasPrefix("optimizer.") {
            let (x, y, x0) = (a.tensor(key)!.array, b.tensor(key)!.array, start.tensor(key)!.array)
            let error = zip(x, y).map { abs($0 - $1) }.max()! / max(1, x.map(abs).max()!)
            guard learned.contains(key) else { statistics = max(statistics, error); continue }
            if error > worst { (worst, name) = (error, key) }
            for i in x.indices {
                difference += Double(x[i] - y[i]) * Double(x[i] - y[i])
                change += Double(x[i] - x0[i]) * Double(x[i] - x0[i])
            }
        }
        let updates = (difference / change).squareRoot()
        print(
            "max-relative-error \(split.testDescription): weights \(String(format: "%.1e", worst)) (\(name)), running statistics \(String(format: "%.1e", statistics)), updates \(String(format: "%.1e", updates))"
        )
        #expect(worst < 1e-5, "\(name)")
        #expect(statistics < 1e-5 && updates < 1e-5 && change > 0)
    }

    /// Stopping the job after every iteration and resuming it gives, bit for bit, the weights of
    /// a job never stopped.
    @Test func resumingAJobGivesTheUninterruptedWeights() throws {
        let (straight, stopped) = (scratchDirectory("dp-straight"), scratchDirectory("dp-stopped"))
        let settings = ["train.sync_bn=true"]
        #expect(try mpirun(2, "nltrain", config(straight, batch: 2, settings)).status == 0)
        var stops = 0
        while try mpirun(2, "nltrain", config(stopped, batch: 2, settings) + ["--max-time", "0"]).status == 75 {
            stops += 1
        }
        #expect(stops == 3, "a stop after each of 4 iterations but the last")
        let (a, b) = (try lastCheckpoint(straight), try lastCheckpoint(stopped))
        #expect(a.names == b.names && a.names.allSatisfy { a.entries[$0]!.bytes == b.entries[$0]!.bytes })
    }

    /// With accumulation an iteration is one optimizer step over its micro-batches, and
    /// checkpoints fall between iterations: a run stopped after every iteration gives, bit for
    /// bit, the weights, AdamW's moments and BatchNorm statistics of one never stopped, with every
    /// draw (dropout, mixup and cutmix, the class-balanced sampler) and the loss's smoothing and
    /// class weights on. Going on with SGD from AdamW's state is refused by name.
    @Test func resumingAnAccumulatingRunGivesTheUninterruptedWeights() throws {
        let (straight, stopped) = (scratchDirectory("acc-straight"), scratchDirectory("acc-stopped"))
        let settings = [
            "train.accumulate=2", "model.dropout=0.5", "train.mixup_alpha=0.8", "train.cutmix_alpha=1",
            "train.label_smoothing=0.1", "train.class_weights=balanced", "train.sampler=class_balanced",
            "train.optimizer=adamw", "train.weight_decay=0.05",
        ]
        #expect(try run("nltrain", config(straight, batch: 2, settings)).status == 0)
        var stops = 0
        while try run("nltrain", config(stopped, batch: 2, settings) + ["--max-time", "0"]).status == 75 { stops += 1 }
        #expect(stops == 3, "a stop after each of 4 iterations but the last")
        let (a, b) = (try lastCheckpoint(straight), try lastCheckpoint(stopped))
        #expect(a.names == b.names && a.names.allSatisfy { a.entries[$0]!.bytes == b.entries[$0]!.bytes })
        let metrics = try String(contentsOfFile: "\(straight)/metrics.jsonl", encoding: .utf8)
        #expect(metrics.contains(#""batch":4"#), "the effective batch in metrics.jsonl: \(metrics.prefix(400))")
        #expect(a.int64s("optimizer.steps") == [4])
        let switched = try run(
            "nltrain", config(straight, batch: 2, settings + ["train.optimizer=sgd", "train.epochs=2"]))
        #expect(
            switched.status == 65 && switched.stderr.contains("holds AdamW's moments, and train.optimizer is sgd"),
            "\(switched.stderr)")
    }

    /// In bfloat16 precision, rank 0 chooses the convolutions' algorithms (timing them once, in
    /// a cache of its own where nothing was chosen before) and every rank takes its choice: the
    /// job trains to the end, the timing and the choice said once.
    @Test(.enabled(if: Precision.bf16.unavailable == nil))
    func aJobInBFloat16() throws {
        let work = scratchDirectory("bf16-job")
        let r = try mpirun(
            2, "nltrain", config(work, batch: 2, ["train.precision=bf16"]),
            environment: ["XDG_CACHE_HOME": scratchDirectory("bf16-job-cache")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.components(separatedBy: "precision bf16: timing ").count == 2, "\(r.stdout)")
        #expect(r.stdout.components(separatedBy: " convolutions in bfloat16; ").count == 2, "\(r.stdout)")
        #expect(FileManager.default.fileExists(atPath: "\(work)/last_checkpoint"))
    }

    /// A rank that dies ends the job with a non-zero exit, and the last checkpoint loads.
    @Test func aRankThatDiesEndsTheJob() throws {
        let work = scratchDirectory("dp-killed")
        let arguments =
            ["-np", "2", "--oversubscribe", "\(commandDirectory)/nltrain"]
            + config(work, batch: 2, ["train.epochs=50", "train.checkpoint_every_iterations=1", "train.sync_bn=true"])
        let job = Process()
        job.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
        job.arguments = arguments
        job.environment = ProcessInfo.processInfo.environment.merging(mpiEnvironment) { $1 }
        job.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        job.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try job.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, !FileManager.default.fileExists(atPath: "\(work)/last_checkpoint") {
            Thread.sleep(forTimeInterval: 0.05)
        }
        Thread.sleep(forTimeInterval: 0.3)
        let ranks = processes(running: "nltrain", with: "\(work).cfg").filter { $0 != job.processIdentifier }
        #expect(ranks.count == 2, "the job's ranks: \(ranks)")
        if let rank = ranks.last { kill(rank, SIGKILL) }
        job.waitUntilExit()
        #expect(job.terminationStatus != 0)
        let checkpoint = try lastCheckpoint(work)
        #expect(
            checkpoint.metadata["format"] == "nl-checkpoint-1" && checkpoint.names.contains("cls_head.fc_cls.weight"))
    }

    /// nleval as a job: each rank scores a share, rank 0 reports what one process reports.
    @Test func evaluationAsAJob() throws {
        let work = scratchDirectory("dp-eval")
        #expect(try run("nltrain", config(work, batch: 4, [])).status == 0)
        let checkpoint = "\(work)/iter_00000004.safetensors"
        let alone = try run("nleval", ["--ckpt", checkpoint, "--views", "2x3", "--json", "\(work)/one.json"])
        let job = try mpirun(2, "nleval", ["--ckpt", checkpoint, "--views", "2x3", "--json", "\(work)/two.json"])
        #expect(alone.status == 0 && job.status == 0, "\(job.stderr)")
        #expect(job.stdout.split(separator: "\n").count == 1, "rank 0 alone reports")
        let one =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(work)/one.json")))
            as! [String: Any]
        let two =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(work)/two.json")))
            as! [String: Any]
        #expect(two["videos"] as? Int == 6)
        for key in ["top1", "top5", "mean_class_accuracy"] {
            #expect(one[key] as? Double == two[key] as? Double, "\(key)")
        }
    }
}
