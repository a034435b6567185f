import Foundation
import NLTensor

/// What loading a state_dict found, key by key.
public struct StateDictReport: Sendable {
    public var loaded: [String] = []
    /// Keys the layer has that the file lacks.
    public var missing: [String] = []
    /// Keys the file has that the layer lacks.
    public var unexpected: [String] = []
    /// Keys whose shapes differ, with both shapes.
    public var mismatched: [String] = []

    public var isComplete: Bool { missing.isEmpty && unexpected.isEmpty && mismatched.isEmpty }

    /// The problems, a few keys of each kind.
    public var summary: String {
        func some(_ keys: [String]) -> String {
            keys.prefix(4).joined(separator: ", ") + (keys.count > 4 ? ", ... (\(keys.count))" : "")
        }
        var parts: [String] = []
        if !missing.isEmpty { parts.append("missing \(some(missing))") }
        if !unexpected.isEmpty { parts.append("unexpected \(some(unexpected))") }
        if !mismatched.isEmpty { parts.append("shape mismatch \(some(mismatched))") }
        return parts.joined(separator: "; ")
    }
}

public struct StateDictError: Error, CustomStringConvertible {
    public let path: String
    public let report: StateDictReport
    public var description: String { "\(path): does not match the model: \(report.summary)" }
}

extension Layer {
    /// The state_dict in PyTorch's layouts (conv weights (out, in, kT, kH, kW), int64 counters),
    /// added to `file` under "prefix" + key.
    public func save(into file: inout SafeTensors, prefix: String = "") {
        for (name, entry) in state {
            switch entry {
            case .parameter(let p): file.set(prefix + name, p.inCheckpointLayout(p.value))
            case .buffer(let b): file.set(prefix + name, b)
            case .counter(let c): file.set(prefix + name, int64s: [c.value], shape: [])
            }
        }
    }

    /// Each parameter's gradient in PyTorch's layout, under "prefix" + key.
    public func saveGradients(into file: inout SafeTensors, prefix: String = "grad.") {
        for (name, p) in parameters { file.set(prefix + name, p.inCheckpointLayout(p.gradient)) }
    }

    /// Loads the entries of `file` under "prefix" + key whose shapes match, as PyTorch's
    /// load_state_dict; the report lists what did not. Keys in `file` outside `prefix` are ignored.
    @discardableResult
    public func load(from file: SafeTensors, prefix: String = "") -> StateDictReport {
        var report = StateDictReport()
        var seen = Set<String>()
        for (name, entry) in state {
            let key = prefix + name
            guard let stored = file.entries[key] else { report.missing.append(key); continue }
            seen.insert(key)
            let expected: [Int]
            switch entry {
            case .parameter(let p): expected = p.checkpointShape
            case .buffer(let b): expected = b.shape
            case .counter: expected = []
            }
            // PyTorch accepts a scalar counter saved as shape [1] too.
            guard stored.shape == expected || (expected == [] && stored.shape == [1]) else {
                report.mismatched.append("\(key) \(stored.shape) vs \(expected)")
                continue
            }
            switch entry {
            case .parameter(let p): p.load(checkpoint: file.tensor(key)!)
            case .buffer(let b): b.copy(from: file.tensor(key)!)
            case .counter(let c):
                guard let value = file.int64s(key)?.first else {
                    report.mismatched.append("\(key) is not int64"); continue
                }
                c.value = value
            }
            report.loaded.append(key)
        }
        report.unexpected = file.names.filter { $0.hasPrefix(prefix) && !seen.contains($0) }
        return report
    }

    /// Loads every entry of the layer from `file`, which must hold exactly the layer's keys under
    /// `prefix` (strict, as load_state_dict(strict=True)); `path` names the file in the error.
    public func loadStrictly(from file: SafeTensors, prefix: String = "", path: String) throws {
        let report = load(from: file, prefix: prefix)
        guard report.isComplete else { throw StateDictError(path: path, report: report) }
    }
}
