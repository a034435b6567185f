import Foundation
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLLayers
import NLModels
import NLTensor
import NLVideo

/// Every command line the README and docs/ show runs, as written, in a folder laid out as the README's
/// (configs/i3d_nl.cfg, work_dirs/, the files the lines name), on demo-sized data: a README line
/// that hangs or fails fails here. configs/i3d_nl.cfg there is the shipped one with the data and
/// sizes of a small synthetic dataset. Lines that cannot run on this machine are listed with why.
struct ReadmeCommandsTests {
    static let repository = repositoryRoot

    /// Lines no test here can run, by their start, and why.
    static let elsewhere: [(start: String, why: String)] = [
        (
            "make ",
            "make test is this suite; .ci/run runs make demo; make bench and make fixtures measure and need PyTorch"
        ),
        ("srun ", "needs a Slurm cluster"),
        ("python3 scripts/convert/check_against_pytorch.py", "needs PyTorch (run by hand; see the closing notes)"),
        (
            "PYTHON=",
            "the peers' benchmarks need PyTorch and mmaction2, or PyAV, decord and torchcodec, and measure (README, Speed); their plumbing runs with stand-ins for the peers in NLModelCLITests"
        ),
    ]

    /// The command lines of the README and of docs/*.md: the indented code lines that start with
    /// a command, the cron line as cron would run it (without its schedule).
    static let commands: [String] = {
        let docs = ((try? FileManager.default.contentsOfDirectory(atPath: "\(repository)/docs")) ?? []).filter {
            $0.hasSuffix(".md")
        }.sorted()
        let text = try! (["README.md"] + docs.map { "docs/\($0)" }).map {
            try String(contentsOfFile: "\(repository)/\($0)", encoding: .utf8)
        }
        .joined(separator: "\n")
        let starts = [
            "nltrain ", "nleval ", "nlpredict ", "nlvideo ", "nlmodel ", "nlbench ", "mpirun ", "srun ", "python3 ",
            "make ",
            "tensorboard ", "PYTHON=",
        ]
        var seen = Set<String>()  // a line the README and a page of docs/ both show runs once
        return text.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("    ") else { return nil }
            var command = line.trimmingCharacters(in: .whitespaces)
            if command.hasPrefix("*/") { command = command.split(separator: " ").dropFirst(5).joined(separator: " ") }
            return starts.contains { command.hasPrefix($0) } && seen.insert(command).inserted ? command : nil
        }
    }()

    /// The folder the lines run in, made once: the config, a trained work directory, and every
    /// file the lines name.
    static let sandbox: String = {
        let dir = scratchDirectory("readme")
        let data = syntheticDatasetDirectory
        try! FileManager.default.createDirectory(atPath: "\(dir)/configs", withIntermediateDirectories: true)
        try! """
        include = \(repository)/configs/i3d_nl.cfg
        [model]
        base_channels = 4
        [data]
        root = \(data)
        train_annotations = \(data)/train.csv
        val_annotations = \(data)/val.csv
        classes = \(data)/classes.txt
        clip_len = 8
        train_short_side = 32 40
        crop_size = 32
        test_short_side = 32
        [train]
        epochs = 1
        batch_size = 4
        eval_every = 1
        log_every = 1
        [eval]
        batch_size = 4

        """.write(toFile: "\(dir)/configs/i3d_nl.cfg", atomically: true, encoding: .utf8)
        // The fine-tuning section: the fixtures' mmengine .pth (nl_i3d_r50 at base_channels 2, 5
        // classes) stands in for mmaction2's Kinetics-400 file, the synthetic dataset's class
        // folders for the user's videos.
        try! """
        include = \(repository)/configs/finetune_folders.cfg
        [model]
        base_channels = 2
        num_classes = 6
        [data]
        clip_len = 8
        train_short_side = 32 40
        crop_size = 32
        test_short_side = 32
        [train]
        epochs = 1
        batch_size = 4
        log_every = 10
        max_bad_fraction = 0.1
        [eval]
        batch_size = 4

        """.write(toFile: "\(dir)/configs/finetune_folders.cfg", atomically: true, encoding: .utf8)
        try! FileManager.default.copyItem(
            atPath: "\(repository)/Tests/NLTrainTests/Fixtures/weights/mmengine.pth",
            toPath: "\(dir)/i3d_nl_kinetics400.pth")
        try! FileManager.default.createDirectory(atPath: "\(dir)/data", withIntermediateDirectories: true)
        try! FileManager.default.createSymbolicLink(atPath: "\(dir)/data/my_videos", withDestinationPath: data)
        let trained = try! run("nltrain", ["--config", "configs/i3d_nl.cfg"], in: dir)
        precondition(trained.status == 0, trained.stderr)
        let work = "\(dir)/work_dirs/i3d_nl"
        let manager = FileManager.default
        try! manager.copyItem(atPath: "\(work)/iter_00000004.safetensors", toPath: "\(work)/iter_00012000.safetensors")
        try! manager.copyItem(atPath: "\(work)/best.safetensors", toPath: "\(dir)/best.safetensors")
        // as from mmaction2: weights, no config
        var converted = try! SafeTensors(contentsOf: "\(work)/best.safetensors")
        converted.metadata = [:]
        try! converted.write(to: "\(dir)/converted.safetensors")
        try! converted.write(to: "\(dir)/inflated_resnet50.safetensors")
        let videos = try! manager.subpathsOfDirectory(atPath: "\(data)/train").sorted()
        try! manager.copyItem(
            atPath: "\(data)/train/" + videos.first { $0.hasSuffix(".mp4") }!, toPath: "\(dir)/video.mp4")
        try! manager.copyItem(
            atPath: "\(data)/train/" + videos.first { $0.hasSuffix(".webm") }!, toPath: "\(dir)/other.webm")
        // nlmodel's inputs: full-size nl_i3d_r50 weights, a small clip with labels, a torchvision ResNet-50.
        let model = Recognizer(spec: ModelSpec.named("nl_i3d_r50")!)
        var weights = SafeTensors()
        model.save(into: &weights)
        try! weights.write(to: "\(dir)/W.safetensors")
        var generator = SeededGenerator(seed: 5)
        var input = SafeTensors()
        input.set("clip", randomTensor([2, 3, 8, 32, 32], using: &generator))
        input.set("labels", int64s: [7, 3], shape: [2])
        try! input.write(to: "\(dir)/X.safetensors")
        try! torchvisionResNet50(using: &generator).file.write(to: "\(dir)/resnet50_2d.safetensors")
        try! "localhost slots=16\n".write(toFile: "\(dir)/hosts", atomically: true, encoding: .utf8)
        return dir
    }()

    @Test func everyLineIsRunOrSaysWhyNot() {
        #expect(Self.commands.count >= 20, "\(Self.commands)")
        for command in Self.commands
        where !command.hasPrefix("n") && !command.hasPrefix("mpirun ") && !command.hasPrefix("cd ") {
            #expect(Self.elsewhere.contains { command.hasPrefix($0.start) }, "README line without a test: \(command)")
        }
    }

    @Test(
        .serialized, .timeLimit(.minutes(5)),
        arguments: commands.filter { c in !elsewhere.contains { c.hasPrefix($0.start) } })
    func runsAsWritten(_ command: String) throws {
        let line = command.replacingOccurrences(of: "/srv/nl", with: Self.sandbox)
        let r = try run(
            "/bin/bash", ["-c", line], in: Self.sandbox,
            environment: mpiEnvironment.merging(["OMPI_MCA_rmaps_base_oversubscribe": "1"]) { $1 })
        #expect(r.status == 0, "\(command)\n\(r.stdout.suffix(1500))\n\(r.stderr.suffix(1500))")
    }
}
