import Foundation
import NLModels
import NLData
import NLLayers
import NLTensor
import NLVideo

/// A checkpoint, the one place that writes and reads one: a safetensors file whose model tensors
/// carry mmaction2's state_dict keys and PyTorch layouts, whose momentum buffers sit under
/// "optimizer.", and whose header's metadata holds the resolved config and the run's position
/// (TrainingState). The model part loads in PyTorch with load_state_dict(strict=True).
public struct Checkpoint {
    /// Keys under this prefix are training state, not model weights.
    public static let optimizerPrefix = "optimizer."

    /// Where it was read from or will be written to (in errors: what it is).
    public let path: String
    public let file: SafeTensors
    /// The run's position, for a training checkpoint (nil for weights alone).
    public let state: TrainingState?

    /// Reads a checkpoint, or any safetensors file of model weights; a training checkpoint's
    /// position must make sense. An mmaction2 checkpoint (.pth) is refused with the converter to use.
    public init(path: String) throws {
        let file: SafeTensors
        do {
            file = try SafeTensors(contentsOf: path, what: "checkpoint")
        } catch let error as SafeTensorsError where error.pyTorchFormat != nil {
            throw SafeTensorsError(
                path: path, pyTorchFormat: error.pyTorchFormat!,
                advice: "convert an mmaction2 checkpoint with "
                    + "python3 scripts/convert/convert_mmaction2_checkpoint.py FILE.pth FILE.safetensors")
        }
        try self.init(path: path, file: file)
    }

    /// A checkpoint from the bytes of one (rank 0's state, sent to the other ranks).
    public init(path: String, file: SafeTensors) throws {
        (self.path, self.file) = (path, file)
        state = file.metadata["format"] != nil ? try TrainingState(metadata: file.metadata, path: path) : nil
    }

    /// The checkpoint of a run now: `model`'s weights, `sgd`'s momentum (none: the weights alone,
    /// as best.safetensors), the position, the resolved config text and the class names, in
    /// index order (so that the file alone says what its scores mean, on any machine).
    public init(model: Recognizer, sgd: SGD?, state: TrainingState, config: String, classes: [String] = []) {
        var file = SafeTensors()
        model.save(into: &file)
        sgd?.save(into: &file)
        file.metadata = state.metadata(config: config)
        if !classes.isEmpty, let json = try? JSONSerialization.data(withJSONObject: classes) {
            file.metadata[Self.classesKey] = String(decoding: json, as: UTF8.self)
        }
        (path, self.file, self.state) = ("", file, state)
    }

    /// The metadata key of the class names: a JSON list of strings.
    public static let classesKey = "classes"

    /// The class names the checkpoint carries, in index order; nil when it has none (weights
    /// converted from another framework, or written before they were kept).
    public var classes: [String]? {
        guard let text = file.metadata[Self.classesKey],
            let names = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String]
        else { return nil }
        return names
    }

    /// Writes it atomically to `path`, unless a value in it could not be loaded again (a run that
    /// diverged): then nothing is written and the error says which tensor.
    public func write(to path: String) throws {
        if let problem = Self.valueProblem(in: file, includingOptimizer: true) {
            throw TrainingError("not writing \(path): \(problem)")
        }
        try file.write(to: path, what: "checkpoint")
    }

    /// What makes the values of `file` impossible to train or evaluate from: a tensor holding NaN
    /// or infinite values (weights, running statistics, momentum under "optimizer." when asked), or
    /// a BatchNorm variance below zero (a bit flip, a bad conversion); nil when none.
    public static func valueProblem(in file: SafeTensors, includingOptimizer: Bool) -> String? {
        for name in file.names
        where file.entries[name]!.dtype.isFloatingPoint && (includingOptimizer || !name.hasPrefix(optimizerPrefix)) {
            guard let tensor = file.tensor(name) else { continue }
            if !tensor.buffer.allSatisfy(\.isFinite) {
                return "tensor \(name) holds NaN or infinite values (the run diverged?)"
            }
            if name.hasSuffix("running_var"), let i = tensor.buffer.firstIndex(where: { $0 < 0 }) {
                return "tensor \(name) holds a negative variance (\(tensor[i]) at \(i))"
            }
        }
        return nil
    }

    /// Fails unless every value can be trained from (`valueProblem`, momentum included).
    public func checkValues() throws {
        if let problem = Self.valueProblem(in: file, includingOptimizer: true) {
            throw CheckpointError(path, problem + "; not loading it")
        }
    }

    /// A training run's state put back: the weights into `model`, the momentum into `sgd`, and
    /// the position returned.
    public func restore(model: Recognizer, sgd: SGD) throws -> TrainingState {
        guard let state else {
            throw CheckpointError(
                path, "not a training checkpoint (its metadata has no format \(TrainingState.format))")
        }
        guard
            state.globalIteration == 0 || sgd.parameters.isEmpty
                || file.names.contains(where: { $0.hasPrefix(Self.optimizerPrefix) })
        else {
            throw CheckpointError(
                path,
                "holds weights but no optimizer state (momentum), as best.safetensors: resuming from it would restart "
                    + "the momentum from zero; fine-tune from it with --init, or resume from an iter_*.safetensors")
        }
        try checkValues()
        try load(into: model)
        try sgd.load(from: file, path: path)
        return state
    }

    /// The resolved config text the run was made with, if the file has one.
    public var configText: String? { file.metadata["config"] }

    /// The values the resolved config `text` sets otherwise than the checkpoint's config did, as
    /// "train.lr = 0.5 (was 0.05)": a resumed run goes on with them, as mmaction2's does.
    public func configChanges(to text: String) -> [String] {
        guard let saved = configText, let old = try? ConfigFile(text: saved, name: path),
            let new = try? ConfigFile(text: text, name: "config")
        else { return [] }
        return new.sections.sorted { $0.key < $1.key }.flatMap { section, entries in
            entries.sorted { $0.key < $1.key }.compactMap { key, entry in
                let was = old.sections[section]?[key]?.value
                return was == entry.value ? nil : "\(section).\(key) = \(entry.value) (was \(was ?? "not set"))"
            }
        }
    }

    /// The config the checkpoint was written with, with `overrides` applied on top.
    public func config(overrides: [String] = []) throws -> Config {
        guard let text = configText else {
            throw CheckpointError(path, "holds no config; give one with --config or --model")
        }
        var configFile = try ConfigFile(text: text, name: "\(path) (its config)")
        for o in overrides { try configFile.apply(override: o) }
        return try Config(configFile)
    }

    /// The model weights alone: every entry outside "optimizer.", all of them possible values
    /// (`valueProblem`: NaN weights would evaluate at chance and train nowhere).
    public func modelState() throws -> SafeTensors {
        var model = SafeTensors()
        model.entries = file.entries.filter { !$0.key.hasPrefix(Self.optimizerPrefix) }
        if let problem = Self.valueProblem(in: model, includingOptimizer: false) {
            throw CheckpointError(path, problem + "; not loading it")
        }
        return model
    }

    /// Loads the model weights into `model`, which must have exactly the checkpoint's keys.
    public func load(into model: Layer) throws {
        try model.loadStrictly(from: modelState(), path: path)
    }
}
