import Foundation
import NLKeys
import NLModels

/// A resolved configuration: every key of every section, with its value from the config files,
/// `--set` overrides or its default. Format and rules: configs/README.md.
public struct Config: Sendable {
    public var model = ModelSection()
    public var data = DataSection()
    public var train = TrainSection()
    public var eval = EvalSection()
    /// Where each key's value came from ("model.depth" -> file:line), for later errors.
    public private(set) var sources: [String: ConfigSource] = [:]

    public init() {}

    /// Interprets `file`: unknown sections and keys, and values that do not fit, are errors that
    /// name the file, the line and (for unknown names) the nearest valid one.
    public init(_ file: ConfigFile) throws(ConfigError) {
        let schema = Self.schema
        for (section, source) in file.sectionOrder where !schema.contains(where: { $0.name == section }) {
            let near = nearest(section, in: schema.map(\.name))
            throw ConfigError(
                source: source, message: "unknown section [\(section)]\(near.map { "; did you mean [\($0)]?" } ?? "")")
        }
        for section in schema {
            // In file order, but a named model first: its fields are the base the other [model] keys change.
            let entries = (file.sections[section.name] ?? [:]).sorted {
                ($0.key == "name" ? 0 : 1, $0.value.source.line) < ($1.key == "name" ? 0 : 1, $1.value.source.line)
            }
            for (key, entry) in entries {
                guard let setting = section.settings.first(where: { $0.key == key }) else {
                    let near = nearest(key, in: section.settings.map(\.key))
                    throw ConfigError(
                        source: entry.source,
                        message:
                            "unknown key '\(key)' in [\(section.name)]\(near.map { "; did you mean '\($0)'?" } ?? "")")
                }
                do { try setting.read(&self, entry.value) } catch let problem as ValueProblem {
                    throw ConfigError(source: entry.source, message: "\(section.name).\(key): \(problem.message)")
                } catch {
                    throw ConfigError(source: entry.source, message: "\(section.name).\(key): \(error)")
                }
                sources["\(section.name).\(key)"] = entry.source
                if section.name == "model" && key == "name" { model.spec = ModelSpec.named(model.name)! }
            }
        }
        // Point at the key the problem concerns, or, when it kept its default, at the depth or the
        // named model that made it wrong.
        if let (key, message) = model.spec.problems().first {
            let source =
                sources["model.\(key)"] ?? sources["model.depth"] ?? sources["model.name"]
                ?? ConfigSource(file: "[model]", line: 0)
            throw ConfigError(source: source, message: "model.\(key): \(message)")
        }
        if case .given(let weights) = train.classWeights, weights.count != model.spec.numClasses {
            throw ConfigError(
                source: source(of: "train.class_weights"),
                message:
                    "train.class_weights has \(weights.count) numbers for model.num_classes \(model.spec.numClasses): give one per class, or balanced"
            )
        }
        if train.lrPolicy == .cosine && train.lrMin > train.lr {
            throw ConfigError(
                source: source(of: "train.lr_min", "train.lr"),
                message:
                    "train.lr_min \(train.lrMin) is above train.lr \(train.lr): the cosine rate would climb to it instead of decaying"
            )
        }
    }

    /// Settings that are allowed but unlikely meant, as sentences for the log.
    public var warnings: [String] {
        var found: [String] = []
        if train.warmup != .none && train.warmupIterations == 0 && train.warmupEpochs >= Double(train.epochs) {
            found.append(
                "train.warmup_epochs \(train.warmupEpochs) is as long as the run (\(train.epochs) epochs): the learning rate never reaches train.lr \(train.lr)"
            )
        }
        return found
    }

    /// The config's network, initialised from `seed` as mmaction2 does, its convolutions in
    /// train.precision; an error (64) where that precision cannot run.
    public func makeModel(seed: UInt64 = 0) throws(ConfigError) -> Recognizer {
        try requirePrecision()
        let model = Recognizer(spec: model.spec, seed: seed)
        model.use(train.precision)
        return model
    }

    /// Fails (64) where train.precision cannot run on this CPU.
    public func requirePrecision() throws(ConfigError) {
        guard let problem = train.precision.unavailable else { return }
        throw ConfigError(
            source: source(of: "train.precision"), message: "train.precision = \(train.precision): \(problem)")
    }

    /// Reads `path` (if any), then applies `overrides` ("section.key=value").
    public init(path: String?, overrides: [String] = []) throws(ConfigError) {
        var file = try path.map { (p) throws(ConfigError) in try ConfigFile(path: p) } ?? ConfigFile()
        for o in overrides { try file.apply(override: o) }
        try self.init(file)
    }

    /// Where the first of `keys` that a file or `--set` gave was set, for an error about it; plain
    /// "config" when none was (a default).
    public func source(of keys: String...) -> ConfigSource {
        keys.lazy.compactMap { sources[$0] }.first ?? ConfigSource(file: "config", line: 0)
    }

    /// Fails unless every key in `keys` ("data.root") has a value, not empty, from a file or `--set`.
    public func require(_ keys: [String], by command: String) throws(ConfigError) {
        for name in keys {
            let (section, key) = (name.split(separator: ".")[0], name.split(separator: ".")[1])
            guard let source = sources[name] else {
                throw ConfigError(
                    source: source(of: name),
                    message: "\(command) needs [\(section)] \(key); set it in the config or with --set \(name)=...")
            }
            guard
                let setting = Self.schema.first(where: { $0.name == section })?.settings.first(where: { $0.key == key }
                ),
                setting.show(self).trimmingCharacters(in: CharacterSet(charactersIn: "\" ")).isEmpty
            else { continue }
            throw ConfigError(source: source, message: "\(name) is empty; \(command) needs it")
        }
    }

    /// The resolved config as config text, every key with its value and its help as a comment:
    /// what `--print-config` shows and what the work directory and every checkpoint keep.
    public var text: String {
        var lines = ["# Resolved configuration: every key, with its value from the config files, --set or its default."]
        for section in Self.schema {
            lines.append("")
            lines.append("[\(section.name)]")
            for setting in section.settings {
                lines.append("# \(setting.help)")
                lines.append("\(setting.key) = \(setting.show(self))")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The keys of every section, for documentation: (section, key, default, help).
    public static var documentation: [(section: String, key: String, value: String, help: String)] {
        let defaults = Config()
        return schema.flatMap { section in section.settings.map { (section.name, $0.key, $0.show(defaults), $0.help) } }
    }
}

/// The name in `candidates` closest to `name` by edit distance, if close enough to be a typo.
func nearest(_ name: String, in candidates: [String]) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return row[b.count]
    }
    let scored = candidates.map { ($0, distance(Array(name), Array($0))) }.min { $0.1 < $1.1 }
    guard let (best, d) = scored, d <= max(2, name.count / 3) else { return nil }
    return best
}
