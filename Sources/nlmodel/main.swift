import ArgumentParser
import Foundation
import NLCommands
import NLData
import NLLayers
import NLModels
import NLTensor
import NLTrain
import NLVideo

/// The model a subcommand works on: from a config file, a named model, or a checkpoint's config.
struct ModelOptions: ParsableArguments {
    @OptionGroup var config: ConfigOptions

    @Option(help: "A named model: \(ModelSpec.names.joined(separator: ", ")).")
    var model: String?

    func validate() throws {
        if config.config != nil && model != nil { throw ValidationError("give --config or --model, not both") }
    }

    /// The resolved config; without --config or --model, the one `checkpoint` was written with.
    func resolve(checkpoint: Checkpoint? = nil) throws -> Config {
        if let model { return try Config(path: nil, overrides: ["model.name=\(model)"] + config.overrides) }
        guard let checkpoint, config.config == nil else { return try config.resolve() }
        return try checkpoint.config(overrides: config.overrides)
    }
}

@main
struct NLModel: MatrixCommand {
    static let configuration = CommandConfiguration(
        commandName: "nlmodel",
        abstract: "Inspect, run and convert Non-local I3D models.",
        discussion: """
            The model comes from --config FILE (its [model] section), --model NAME, or a checkpoint's own config, \
            with --set section.key=value overrides, as for nltrain. \
            \(ExitStatus.legend(.done, .usage, .data, .io, saying: [.data: "bad file content", .io: "cannot read or write a file"]))
            """,
        subcommands: [Summary.self, Forward.self, Inflate.self, Convert.self])
}

struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Each layer's output shape, parameters and FLOPs, and the totals, for a clip shape.")

    @OptionGroup var options: ModelOptions

    @Option(help: "A checkpoint or weights file: its model (its own config), which its weights must fit.")
    var ckpt: String?

    @Option(
        help: ArgumentHelp(
            "Clip shape N,T,H,W (default: 1, data.clip_len, data.crop_size, data.crop_size).", valueName: "N,T,H,W"))
    var clip: String?

    func run() throws {
        try runCommand("nlmodel") {
            let checkpoint = try ckpt.map { try Checkpoint(path: $0) }
            if let checkpoint, checkpoint.configText == nil, options.config.config == nil, options.model == nil {
                // weights from another framework: what their keys say, and how to see the layers
                print(
                    "\(checkpoint.path): weights without a config, of a network with "
                        + "\(WeightsArchitecture.describe(try checkpoint.modelState())); give --config or --model for its layers"
                )
                return .done
            }
            let config = try options.resolve(checkpoint: checkpoint)
            var shape = [1, config.data.clipLength, config.data.cropSize, config.data.cropSize]
            if let clip {
                let parts = clip.split(separator: ",").compactMap { Int($0) }
                guard parts.count == 4, parts.allSatisfy({ $0 > 0 }) else {
                    throw UsageError("--clip takes N,T,H,W, such as 1,32,224,224")
                }
                shape = parts
            }
            let model = try ModelTool.model(config, checkpoint: checkpoint)
            if let problem = model.clipProblem(shape, training: false) {
                throw UsageError("--clip \(shape.map(String.init).joined(separator: ",")): \(problem)")
            }
            print(ModelTool.summary(of: model, name: config.model.name, clipShape: shape + [3]))
            return .done
        }
    }
}

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a saved clip through the model and save the logits (and the loss and gradients).",
        discussion: """
            The input holds a float tensor 'clip' [N, 3, T, H, W] (PyTorch's layout) and, for --backward, an int64 \
            tensor 'labels' [N]. The output holds 'logits' [N, classes] and, with --backward, 'loss' and every \
            parameter's gradient as 'grad.<key>' in PyTorch's layouts. Dropout is off. This is how to check a \
            converted checkpoint against the framework it came from. With --set train.precision=bf16 (CPUs with \
            AVX512_BF16 or AMX) every convolution and non-local product runs in bfloat16, as under PyTorch's \
            torch.autocast to bfloat16.
            """)

    @OptionGroup var options: ModelOptions

    @Option(
        help:
            "Checkpoint or weights to load (all model keys must match). Without it the model is initialised from its seed."
    )
    var ckpt: String?

    @Option(help: "Safetensors file with 'clip' (and 'labels').")
    var input: String

    @Option(help: "Safetensors file to write.")
    var output: String

    @Flag(help: "Use batch statistics in BatchNorm, as PyTorch's train().")
    var trainMode = false

    @Flag(help: "Also compute the loss of 'labels' and every parameter's gradient.")
    var backward = false

    func run() throws {
        try runCommand("nlmodel") {
            try refuseClashes(
                outputs: [("--output", output)],
                inputs: [("--ckpt", ckpt), ("--input", input), ("--config", options.config.config)])
            try Files.checkWritable(output, what: "output file")
            let checkpoint = try ckpt.map { try Checkpoint(path: $0) }
            let config = try options.resolve(checkpoint: checkpoint)
            try config.requirePrecision()  // the one subcommand that computes
            let model = try ModelTool.model(config, checkpoint: checkpoint, dropout: false)
            model.use(config.train.precision)
            let inputFile = try SafeTensors(contentsOf: input)
            let start = Date()
            let result = try ModelTool.forward(
                model, input: inputFile, inputPath: input, trainMode: trainMode, backward: backward)
            let seconds = Date().timeIntervalSince(start)
            try result.write(to: output)
            print(
                "wrote \(output): logits\(backward ? ", loss and \(result.names.count - 2) gradients" : "")"
                    + String(format: " (forward%@: %.2f s)", backward ? " and backward" : "", seconds))
            return .done
        }
    }
}

struct Inflate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inflate a 2D ImageNet ResNet (torchvision key names) into the 3D model.",
        discussion: """
            Each 2D kernel is repeated along time and divided by its temporal length, BatchNorm is copied, and the \
            non-local blocks and the head keep their initialisation, as mmaction2's inflate_weights. The output is \
            a safetensors file of the model's weights, for [model] pretrained or nltrain --init.
            """)

    @OptionGroup var options: ModelOptions

    @Option(
        name: .customLong("from"),
        help: "2D ResNet weights with torchvision's key names (safetensors, or torchvision's .pth).")
    var source: String

    @Option(help: "Safetensors file to write.")
    var output: String

    func run() throws {
        try runCommand("nlmodel") {
            try refuseClashes(
                outputs: [("--output", output)], inputs: [("--from", source), ("--config", options.config.config)])
            try Files.checkWritable(output, what: "output file")
            let config = try options.resolve()
            let model = try ModelTool.model(config)
            let (weights, report) = try ModelTool.inflate(
                model, config: config, from: try ForeignWeights.load(source, what: "2D weights"), path: source)
            try weights.write(to: output)
            print(ModelTool.describe(report, from: source))
            print("wrote \(output)")
            return .done
        }
    }
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert another framework's weights (PyTorch .pth, Caffe2 .pkl) into a safetensors file.",
        discussion: """
            Reads, without Python, PyTorch's .pth files in either of torch.save's formats (the zip archive of \
            PyTorch 1.6 and later, and the older format of most 2020 model-zoo files: mmaction2 and mmengine \
            checkpoints, bare state dicts; float32, float16 or bfloat16) and the Caffe2 .pkl blob files of \
            the paper's own models (video-nonlocal-net), named as mmaction2 names them. Nothing in a file is run: a \
            pickle that names anything but what a state dict is made of is refused, by name. The model tensors are \
            written as float32 with the class names the file has; an optimizer and other extras are left out and \
            listed. With --config or --model the weights must fit that model. Every command reads such files \
            directly as well (--ckpt, --init); a converted file loads faster and any safetensors tool reads it.
            """)

    @OptionGroup var options: ModelOptions

    @Argument(help: "The weights to convert (.pth, .pkl).")
    var input: String

    @Argument(help: "The safetensors file to write.")
    var output: String

    func run() throws {
        try runCommand("nlmodel") {
            try refuseClashes(outputs: [("the output", output)], inputs: [("the input", input)])
            try Files.checkWritable(output, what: "output file")
            let data = try Files.read(input, what: "weights")
            guard let format = SafeTensors.pyTorchFormat(of: data) else {
                throw SafeTensorsError(
                    path: input, problem: "not a PyTorch or Caffe2 file (neither a zip archive nor a pickle)")
            }
            let foreign = try ForeignWeights(data: data, path: input)
            var weights = foreign.weights
            weights.metadata["converted_from"] = URL(fileURLWithPath: input).lastPathComponent
            let checkpoint = try Checkpoint(path: input, file: weights)
            if options.config.config != nil || options.model != nil {
                let config = try options.resolve()
                _ = try ModelTool.model(config, checkpoint: checkpoint)
                print("\(input): fits \(config.model.name)")
            }
            try weights.write(to: output)
            print("\(input): \(weights.metadata["imported_from"] ?? format), \(weights.entries.count) tensors")
            if !foreign.leftOut.isEmpty {
                print(
                    "left out \(foreign.leftOut.count), not model weights: \(foreign.leftOut.prefix(8).joined(separator: ", "))"
                        + (foreign.leftOut.count > 8 ? ", ..." : ""))
            }
            print("the weights are of a network with \(WeightsArchitecture.describe(weights))")
            if let classes = checkpoint.classes { print("class names: \(classes.count), from the file") }
            print("wrote \(output)")
            return .done
        }
    }
}
