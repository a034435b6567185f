import Foundation
import NLTestSupport
import Testing

/// PyTorch's and Caffe2's weights files as the commands take them (the fixtures of
/// scripts/fixtures/make_weights_fixtures.py, one network saved every way): each predicts and
/// evaluates exactly as the reference safetensors file, and so does its `nlmodel convert` output;
/// `nltrain --init` starts from one; a config that disagrees with the file's own is named.
struct ForeignWeightsCLITests {
    static let fixtures = "\(repositoryRoot)/Tests/NLTrainTests/Fixtures/weights"
    static let formats = [
        "mmengine.pth", "mmcv_legacy_fp16.pth", "bare_bf16.pth", "caffe2_py2.pkl", "caffe2_py2_p0.pkl",
        "caffe2_p2.pkl", "caffe2_p5.pkl",
    ]

    /// The fixtures' network (nl_i3d_r50 at base_channels 2, 5 classes) and five of the synthetic
    /// dataset's validation class folders, with one class-names file for every format (only
    /// mmengine's file carries names).
    static let setup: (config: String, classes: String, videos: String) = {
        let dir = scratchDirectory("foreign-weights", made: true)
        let names = ["moving down", "moving left", "moving right", "moving up", "turning clockwise"]
        for name in names {
            try! FileManager.default.createDirectory(atPath: "\(dir)/data/val", withIntermediateDirectories: true)
            try! FileManager.default.createSymbolicLink(
                atPath: "\(dir)/data/val/\(name)", withDestinationPath: "\(syntheticDatasetDirectory)/val/\(name)")
        }
        try! (names.joined(separator: "\n") + "\n").write(
            toFile: "\(dir)/classes.txt", atomically: true, encoding: .utf8)
        try! """
        [model]
        name = nl_i3d_r50
        base_channels = 2
        num_classes = 5
        [data]
        format = folders
        root = \(dir)/data
        val_annotations = val
        classes = \(dir)/classes.txt
        clip_len = 8
        frame_interval = 4
        test_short_side = 32
        crop_size = 32
        [eval]
        batch_size = 8

        """.write(toFile: "\(dir)/fixture.cfg", atomically: true, encoding: .utf8)
        return ("\(dir)/fixture.cfg", "\(dir)/classes.txt", "\(dir)/data/val")
    }()

    /// nlpredict's JSON lines and nleval's per-video scores for one weights file.
    static func outputs(of weights: String) throws -> (predicted: String, scores: String) {
        let predicted = try run(
            "nlpredict",
            ["--ckpt", weights, "--config", setup.config, "--classes", setup.classes, "--json", setup.videos])
        #expect(predicted.status == 0, "\(weights): \(predicted.stderr)")
        let dump = "\(scratchDirectory("foreign-dump", made: true))/scores.csv"
        let evaluated = try run("nleval", ["--ckpt", weights, "--config", setup.config, "--dump", dump])
        #expect(evaluated.status == 0, "\(weights): \(evaluated.stderr)")
        return (predicted.stdout, try String(contentsOfFile: dump, encoding: .utf8))
    }

    static let reference = try! outputs(of: "\(fixtures)/weights.safetensors")

    @Test(arguments: formats)
    func predictsAndEvaluatesAsTheReference(file: String) throws {
        #expect(Self.reference.predicted.split(separator: "\n").count >= 5, "a video of each class at least")
        let read = try Self.outputs(of: "\(Self.fixtures)/\(file)")
        #expect(read.predicted == Self.reference.predicted, "nlpredict on \(file)")
        #expect(read.scores == Self.reference.scores, "nleval --dump on \(file)")

        let converted = "\(scratchDirectory("converted", made: true))/\(file).safetensors"
        let conversion = try run(
            "nlmodel", ["convert", "\(Self.fixtures)/\(file)", converted, "--config", Self.setup.config])
        #expect(conversion.status == 0, "\(conversion.stderr)")
        #expect(
            conversion.stdout.contains("380 tensors") && conversion.stdout.contains("wrote \(converted)"),
            "\(conversion.stdout)")
        #expect(try Self.outputs(of: converted).predicted == Self.reference.predicted, "nlpredict on \(file) converted")
    }

    /// The file's own config (mmengine's meta) says embedded-Gaussian blocks; a config that says
    /// dot product, whose keys are the same, is refused with the fix, before any work.
    @Test func aConfigThatDisagreesWithTheFileIsNamed() throws {
        let r = try run(
            "nleval",
            [
                "--ckpt", "\(Self.fixtures)/mmengine.pth", "--config", Self.setup.config, "--set",
                "model.non_local_mode=dot_product",
            ])
        #expect(r.status == 64, "\(r.stderr)")
        #expect(
            r.stderr.contains("mode='embedded_gaussian' where the config has model.non_local_mode = dot_product")
                && r.stderr.contains("give --set model.non_local_mode=embedded_gaussian"), "\(r.stderr)")
        let bare = try run("nlpredict", ["--ckpt", "\(Self.fixtures)/caffe2_p2.pkl", Self.setup.videos])
        #expect(
            bare.status == 64 && bare.stderr.contains("without this project's config: give --config FILE"),
            "\(bare.stderr)")
        #expect(bare.stderr.contains("base_channels 2") && bare.stderr.contains("num_classes 5"), "\(bare.stderr)")
    }

    /// Fine-tuning from a .pth: every weight but the 5-class head, said in the log; a classifier
    /// with more outputs (8) than the data has classes (6) is warned about.
    @Test func nltrainStartsFromAPth() throws {
        let work = scratchDirectory("init-from-pth")
        let r = try run(
            "nltrain",
            [
                "--config", tinyRunConfig(workDirectory: work, epochs: 1), "--set", "model.name=nl_i3d_r50", "--set",
                "model.base_channels=2", "--set", "model.norm_eval=true", "--set", "model.frozen_stages=1", "--set",
                "model.num_classes=8", "--init",
                "\(Self.fixtures)/mmcv_legacy_fp16.pth",
            ])
        #expect(r.status == 0, "\(r.stderr)")
        let log = try String(contentsOfFile: "\(work)/train.log", encoding: .utf8)
        #expect(
            log.contains(
                "initialised 378 tensors from \(Self.fixtures)/mmcv_legacy_fp16.pth; not loaded: shape mismatch cls_head.fc_cls.weight [5, 64] vs [8, 64]"
            ),
            "\(log)")
        #expect(
            log.contains(
                "warning: model.num_classes is 8 but the dataset has 6 classes: 2 outputs of the classifier are never trained"
            ), "\(log)")
    }

    /// `nlmodel summary --ckpt` on a file without this project's config says what network it holds.
    @Test func summaryDescribesAForeignFile() throws {
        let r = try run("nlmodel", ["summary", "--ckpt", "\(Self.fixtures)/caffe2_py2.pkl"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("depth 50 (3-4-6-3 bottleneck blocks), base_channels 2"), "\(r.stdout)")
        let full = try run(
            "nlmodel", ["summary", "--ckpt", "\(Self.fixtures)/mmengine.pth", "--config", Self.setup.config])
        #expect(full.status == 0 && full.stdout.contains("parameters"), "\(full.stdout)\(full.stderr)")
    }
}
