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

    /// Reads a checkpoint, or any file of model weights: safetensors, or another framework's
    /// (ForeignWeights: PyTorch's .pth, Caffe2's .pkl). A training checkpoint's position must make
    /// sense.
    public init(path: String) throws {
        try self.init(path: path, file: ForeignWeights.load(path, what: "checkpoint"))
    }

    /// A checkpoint from the bytes of one (rank 0's state, sent to the other ranks).
    public init(path: String, file: SafeTensors) throws {
        (self.path, self.file) = (path, file)
        state = file.metadata["format"] != nil ? try TrainingState(metadata: file.metadata, path: path) : nil
    }

    /// The checkpoint of a run now: `model`'s weights, `optimizer`'s state (none: the weights alone,
    /// as best.safetensors), the position, the resolved config text and the class names, in
    /// index order (so that the file alone says what its scores mean, on any machine).
    public init(model: Recognizer, optimizer: Optimizer?, state: TrainingState, config: String, classes: [String] = [])
    {
        var file = SafeTensors()
        model.save(into: &file)
        optimizer?.save(into: &file)
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

    /// A training run's state put back: the weights into `model`, the optimizer's state into `optimizer`, and
    /// the position returned.
    public func restore(model: Recognizer, optimizer: Optimizer) throws -> TrainingState {
        guard let state else {
            throw CheckpointError(
                path, "not a training checkpoint (its metadata has no format \(TrainingState.format))")
        }
        guard
            state.globalIteration == 0 || optimizer.parameters.isEmpty
                || file.names.contains(where: { $0.hasPrefix(Self.optimizerPrefix) })
        else {
            throw CheckpointError(
                path,
                "holds weights but no optimizer state (momentum), as best.safetensors: resuming from it would restart "
                    + "the momentum from zero; fine-tune from it with --init, or resume from an iter_*.safetensors")
        }
        try checkValues()
        try load(into: model)
        try optimizer.load(from: file, path: path)
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
            let origin = file.metadata["imported_from"].map { "weights from \($0)" } ?? "weights alone"
            let network = (try? modelState()).map {
                "; the weights are of a network with \(WeightsArchitecture.describe($0))"
            }
            throw ConfigError(
                source: ConfigSource(file: path, line: 0),
                message: "holds \(origin), without this project's config: give --config FILE\(network ?? "")")
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

    /// Loads the model weights into `model`, which must have exactly the checkpoint's keys. When
    /// they do not fit, the error says what network the weights are of, in config keys.
    public func load(into model: Recognizer) throws {
        try checkSettings(of: model.spec)
        let weights = try modelState()
        do {
            try model.loadStrictly(from: weights, path: path)
        } catch let error as StateDictError {
            throw CheckpointError(
                path,
                "does not fit the model of the config (\(error.report.summary)); the weights are of a network with "
                    + "\(WeightsArchitecture.describe(weights)) (set those [model] keys: configs/README.md)")
        }
    }

    /// Fails when the config text another framework saved in the file (mmaction2's, see
    /// ForeignWeights) sets the non-local blocks otherwise than `spec`: embedded-Gaussian and
    /// dot-product blocks have the same keys, and with the other function the weights would
    /// load and compute wrong scores.
    public func checkSettings(of spec: ModelSpec) throws {
        guard let text = file.metadata[ForeignWeights.sourceConfigKey], spec.nonLocal.joined().contains(1),
            let start = text.range(of: #"non_local_cfg\s*=\s*dict\("#, options: .regularExpression)
        else { return }
        // Up to the parenthesis that closes dict( (mmaction2 writes norm_cfg=dict(...) before mode).
        var depth = 1
        let end =
            text[start.upperBound...].firstIndex {
                depth += $0 == "(" ? 1 : $0 == ")" ? -1 : 0
                return depth == 0
            } ?? text.endIndex
        let settings = text[start.upperBound..<end]
        func value(_ name: String) -> String? {
            guard let r = settings.range(of: #"\b"# + name + #"\s*=\s*'?[A-Za-z_]+"#, options: .regularExpression)
            else {
                return nil
            }
            return String(settings[r].split(separator: "=").last!).trimmingCharacters(
                in: CharacterSet(charactersIn: " '"))
        }
        var said: [String] = [], fixes: [String] = []
        if let mode = value("mode"), mode != spec.nonLocalMode.rawValue {
            said.append("mode='\(mode)' where the config has model.non_local_mode = \(spec.nonLocalMode.rawValue)")
            fixes.append("--set model.non_local_mode=\(mode)")
        }
        if let scale = value("use_scale").map({ $0 == "True" }), scale != spec.nonLocalUseScale {
            said.append(
                "use_scale=\(scale ? "True" : "False") where the config has model.non_local_use_scale = \(spec.nonLocalUseScale)"
            )
            fixes.append("--set model.non_local_use_scale=\(scale)")
        }
        guard said.isEmpty else {
            throw ConfigError(
                source: ConfigSource(file: path, line: 0),
                message:
                    "the config saved in it sets its non-local blocks' \(said.joined(separator: " and ")); their keys cannot "
                    + "show it, and the weights would compute wrong scores: give \(fixes.joined(separator: " "))")
        }
    }
}
