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

    /// Reads a checkpoint, or any safetensors file of model weights.
    public init(path: String) throws {
        self.path = path
        file = try SafeTensors(contentsOf: path, what: "checkpoint")
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

    /// The model weights alone: every entry outside "optimizer.".
    public var modelState: SafeTensors {
        var model = SafeTensors()
        model.entries = file.entries.filter { !$0.key.hasPrefix(Self.optimizerPrefix) }
        return model
    }

    /// Loads the model weights into `model`, which must have exactly the checkpoint's keys.
    public func load(into model: Layer) throws {
        try model.loadStrictly(from: modelState, path: path)
    }
}
