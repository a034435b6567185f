import Foundation
import NLModels

/// A checkpoint: a safetensors file whose model tensors carry mmaction2's state_dict keys and
/// PyTorch layouts, whose training state sits under "optimizer." and in the header's metadata
/// (see DESIGN.md). The model part loads in PyTorch with load_state_dict(strict=True).
public struct Checkpoint {
    /// Keys under this prefix are training state, not model weights.
    public static let optimizerPrefix = "optimizer."

    public let path: String
    public let file: SafeTensors

    /// Reads a checkpoint, or any safetensors file of model weights; a training checkpoint's
    /// position must make sense.
    public init(path: String) throws {
        self.path = path
        file = try SafeTensors(contentsOf: path, what: "checkpoint")
        if file.metadata["format"] != nil { _ = try TrainingState(metadata: file.metadata, path: path) }
    }

    public init(path: String, file: SafeTensors) {
        self.path = path
        self.file = file
    }

    /// The resolved config text the run was made with, if the file has one.
    public var configText: String? { file.metadata["config"] }

    /// The config the checkpoint was written with, with `overrides` applied on top.
    public func config(overrides: [String] = []) throws -> Config {
        guard let text = configText else {
            throw CommandError(.data, "\(path): holds no config; give one with --config or --model")
        }
        var configFile = try ConfigFile(text: text, name: "\(path) (its config)")
        for o in overrides { try configFile.apply(override: o) }
        return try Config(configFile)
    }

    /// The model weights alone: every entry outside "optimizer.", all of them finite (a run that
    /// diverged writes NaN weights, which would evaluate at chance and train nowhere).
    public func modelState() throws -> SafeTensors {
        var model = SafeTensors()
        model.entries = file.entries.filter { !$0.key.hasPrefix(Self.optimizerPrefix) }
        for name in model.names where model.entries[name]!.dtype == .f32 || model.entries[name]!.dtype == .f64 {
            guard let tensor = model.tensor(name), tensor.buffer.allSatisfy(\.isFinite) else {
                throw CommandError(.data, "\(path): tensor \(name) holds NaN or infinite values (the run diverged?); not loading it")
            }
        }
        return model
    }

    /// Loads the model weights into `model`, which must have exactly the checkpoint's keys.
    public func load(into model: Layer) throws {
        try model.loadStrictly(from: modelState(), path: path)
    }
}
