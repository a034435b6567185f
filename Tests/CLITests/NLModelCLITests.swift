import Foundation
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLLayers
import NLModels
import NLTensor
import NLVideo

struct NLModelCLITests {
    @Test func summaryGivesTheTotals() throws {
        let r = try run("nlmodel", ["summary", "--model", "nl_i3d_r50"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("35,397,840") && r.stdout.contains("88.677"))
        #expect(r.stdout.contains("backbone.layer3.5.non_local_block"))
    }

    @Test func configErrorsExit64WithTheNearestKey() throws {
        let r = try run("nlmodel", ["summary", "--model", "nl_i3d_r50", "--set", "model.num_clases=7"])
        #expect(r.status == 64 && r.stderr.contains("did you mean 'num_classes'?"))
        #expect(try run("nlmodel", ["summary", "--model", "nl_i3d_r50", "--config", "x.cfg"]).status == 64)
    }

    /// The model forward's tests run, and their input: a random clip of 2 x 3 x 8 x 32 x 32 with
    /// labels.
    static let spec = ["--model", "nl_i3d_r50_tiny", "--set", "model.num_classes=5"]
    static func writeInput(to path: String) throws {
        var input = SafeTensors()
        var generator = SeededGenerator(seed: 3)
        let clip = Tensor(zeros: [2, 3, 8, 32, 32])
        clip.fillNormal(std: 1, using: &generator)
        input.set("clip", clip)
        input.set("labels", int64s: [1, 4], shape: [2])
        try input.write(to: path)
    }

    /// forward writes logits and, with --backward, the loss and every gradient under PyTorch's
    /// names; the same weights give the same logits through a checkpoint.
    @Test func forwardWritesLogitsLossAndGradients() throws {
        let dir = scratchDirectory("files", made: true)
        try Self.writeInput(to: "\(dir)/in.safetensors")
        let r = try run(
            "nlmodel",
            ["forward"] + Self.spec + [
                "--input", "\(dir)/in.safetensors", "--output", "\(dir)/out.safetensors", "--train-mode", "--backward",
            ])
        #expect(r.status == 0, "\(r.stderr)")
        let out = try SafeTensors(contentsOf: "\(dir)/out.safetensors")
        #expect(out.entries["logits"]?.shape == [2, 5] && out.entries["loss"]?.shape == [])
        let model = Recognizer(
            spec: try Config(path: nil, overrides: ["model.name=nl_i3d_r50_tiny", "model.num_classes=5"]).model.spec)
        #expect(Set(out.names.filter { $0.hasPrefix("grad.") }) == Set(model.parameters.map { "grad.\($0.name)" }))
        #expect(out.entries["grad.backbone.conv1.conv.weight"]?.shape == [4, 3, 5, 7, 7])

        // Save weights, run inference through --ckpt: same logits as from the same seed.
        var weights = SafeTensors()
        model.save(into: &weights)
        try weights.write(to: "\(dir)/w.safetensors")
        let a = try run(
            "nlmodel",
            ["forward"] + Self.spec + [
                "--ckpt", "\(dir)/w.safetensors", "--input", "\(dir)/in.safetensors", "--output",
                "\(dir)/a.safetensors",
            ])
        let b = try run(
            "nlmodel",
            ["forward"] + Self.spec + ["--input", "\(dir)/in.safetensors", "--output", "\(dir)/b.safetensors"])
        #expect(a.status == 0 && b.status == 0)
        #expect(
            try SafeTensors(contentsOf: "\(dir)/a.safetensors").tensor("logits")!.array
                == SafeTensors(contentsOf: "\(dir)/b.safetensors").tensor("logits")!.array)
    }

    /// forward in bf16 runs the convolutions in bfloat16 (logits near float32's, not equal), or
    /// is refused where the CPU has no bfloat16.
    @Test func forwardInBFloat16() throws {
        let dir = scratchDirectory("files", made: true)
        try Self.writeInput(to: "\(dir)/in.safetensors")
        func logits(_ precision: String) throws -> (status: Int32, stderr: String, logits: Tensor?) {
            let output = "\(dir)/\(precision).safetensors"
            let r = try run(
                "nlmodel",
                ["forward"] + Self.spec + [
                    "--set", "train.precision=\(precision)", "--input", "\(dir)/in.safetensors", "--output", output,
                ])
            return (r.status, r.stderr, r.status == 0 ? try SafeTensors(contentsOf: output).tensor("logits") : nil)
        }
        let float32 = try logits("fp32"), bfloat16 = try logits("bf16")
        guard Precision.bf16.unavailable == nil else {
            #expect(bfloat16.status == 64 && bfloat16.stderr.contains("train.precision = bf16"), "\(bfloat16.stderr)")
            return
        }
        let (a, b) = (float32.logits!, bfloat16.logits!)
        #expect(relativeError(b, a) > 0 && relativeError(b, a) < 5e-2, "\(relativeError(b, a))")
    }

    @Test func badInputsGiveDataAndIOErrors() throws {
        let dir = scratchDirectory("files", made: true)
        let missing = try run(
            "nlmodel",
            [
                "forward", "--model", "nl_i3d_r50_tiny", "--input", "\(dir)/none.safetensors", "--output",
                "\(dir)/o.safetensors",
            ])
        #expect(missing.status == 74 && missing.stderr.contains("none.safetensors"))
        try Data("not safetensors".utf8).write(to: URL(fileURLWithPath: "\(dir)/junk.safetensors"))
        let junk = try run(
            "nlmodel",
            [
                "forward", "--model", "nl_i3d_r50_tiny", "--input", "\(dir)/junk.safetensors", "--output",
                "\(dir)/o.safetensors",
            ])
        #expect(junk.status == 65 && junk.stderr.contains("junk.safetensors"))
        var noLabels = SafeTensors()
        noLabels.set("clip", Tensor(zeros: [1, 3, 8, 32, 32]))
        try noLabels.write(to: "\(dir)/nolabels.safetensors")
        let r = try run(
            "nlmodel",
            [
                "forward", "--model", "nl_i3d_r50_tiny", "--input", "\(dir)/nolabels.safetensors", "--output",
                "\(dir)/o.safetensors", "--backward",
            ])
        #expect(r.status == 65 && r.stderr.contains("labels"))
        let wrongCheckpoint = try run(
            "nlmodel",
            [
                "forward", "--model", "nl_i3d_r50", "--ckpt", "\(dir)/nolabels.safetensors",
                "--input", "\(dir)/nolabels.safetensors", "--output", "\(dir)/o.safetensors",
            ])
        #expect(wrongCheckpoint.status == 65 && wrongCheckpoint.stderr.contains("missing"))
    }

    @Test func inflateReportsWhatItMapped() throws {
        let dir = scratchDirectory("files", made: true)
        var file2D = SafeTensors()
        file2D.set("conv1.weight", Tensor(shape: [4, 3, 7, 7], repeating: 0.5))
        file2D.set("fc.weight", Tensor(zeros: [10, 128]))
        try file2D.write(to: "\(dir)/r2d.safetensors")
        let r = try run(
            "nlmodel",
            [
                "inflate", "--model", "nl_i3d_r50_tiny", "--from", "\(dir)/r2d.safetensors", "--output",
                "\(dir)/i.safetensors",
            ])
        #expect(
            r.status == 0 && r.stdout.contains("mapped 1 tensors")
                && r.stdout.contains("not used from \(dir)/r2d.safetensors: fc.weight"))
        let inflated = try SafeTensors(contentsOf: "\(dir)/i.safetensors").tensor("backbone.conv1.conv.weight")!
        #expect(inflated.shape == [4, 3, 5, 7, 7] && inflated.array.allSatisfy { abs($0 - 0.1) < 1e-7 })
        var unrelated = SafeTensors()
        unrelated.set("something", Tensor(zeros: [2]))
        try unrelated.write(to: "\(dir)/u.safetensors")
        #expect(
            try run(
                "nlmodel",
                [
                    "inflate", "--model", "nl_i3d_r50_tiny", "--from", "\(dir)/u.safetensors", "--output",
                    "\(dir)/i.safetensors",
                ]
            ).status == 65)
    }

}
