import Foundation
import NLLayers
import NLModels
import NLTensor

/// Which algorithm each convolution of a network runs in bfloat16 precision, chosen on this
/// machine (ConvolutionChoice: the own float32 paths and oneDNN's bfloat16 timed on the network's
/// own shapes, oneDNN checked against its emulation first) and kept beside the self-check's
/// verdicts, one line per (machine and libraries, threads, network, clip): the first run on them
/// takes a few seconds more, the others none. float32 runs the own paths, with nothing to time.
public enum ConvolutionChoices {
    /// $XDG_CACHE_HOME/nl-i3d/convolutions.txt, or ~/.cache/nl-i3d/convolutions.txt.
    public static var file: String? {
        SelfCheck.verdictFile.map { ($0 as NSString).deletingLastPathComponent + "/convolutions.txt" }
    }

    /// What a choice holds for: the self-check's configuration key (CPU, OpenBLAS, threads, build),
    /// oneDNN's version, and the network and its clip.
    static func key(spec: ModelSpec, clipShape: [Int]) -> String {
        var digest: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a of the network's settings
        for byte in String(describing: spec).utf8 { digest = (digest ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "\(SelfCheck.key(.current)); oneDNN \(Precision.oneDNNVersion); network \(String(digest, radix: 16)) "
            + "on \(clipShape.map(String.init).joined(separator: "x"))"
    }

    /// The kept choices by key: (one letter per convolution, "o" own or "b" bfloat16; summary).
    static func kept(in path: String? = file) -> [String: (algorithms: String, summary: String)] {
        guard let path, let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var found: [String: (String, String)] = [:]
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 3, fields[1].allSatisfy({ $0 == "o" || $0 == "b" }) else { continue }
            found[fields[0]] = (fields[1], fields[2])
        }
        return found
    }

    /// The kept lines of this machine, for nlbench verify: "network ... on NxTxHxW: summary".
    public static var thisMachine: [String] {
        let prefix = "\(SelfCheck.key(.current)); oneDNN \(Precision.oneDNNVersion); "
        return kept().filter { $0.key.hasPrefix(prefix) }.map {
            "\($0.key.dropFirst(prefix.count)): \($0.value.summary)"
        }
        .sorted()
    }

    /// Makes `model`'s convolutions run what was chosen for it at `clipShape` (N, T, H, W) in
    /// `precision`: kept, or measured now and kept. Returns a line for the log: what runs, and
    /// the table of times when it measured now.
    @discardableResult
    public static func apply(to model: Recognizer, clipShape: [Int], precision: Precision) -> String {
        guard precision == .bf16 else {
            model.use(precision)
            return "precision fp32: every convolution on the own float32 paths"
        }
        model.use(precision)  // the non-local blocks' products; the convolutions as chosen below
        let key = key(spec: model.spec, clipShape: clipShape)
        if let kept = kept()[key], kept.algorithms.count == model.convolutions.count {
            use(kept.algorithms, on: model)
            return "precision bf16: \(kept.summary) (chosen on this machine before: \(file ?? ""))"
        }
        let started = Date()
        let choice = Recognizer.tuneConvolutions(spec: model.spec, clipShape: clipShape, candidates: [.own, .bfloat16])
        model.use(choice)
        let summary = summary(of: choice)
        let problem = keep(key: key, choice: choice, summary: summary)
        return "precision bf16: \(summary), timed now on the network's shapes "
            + String(format: "(%.1f s)", Date().timeIntervalSince(started))
            + (problem.map { " (not kept: \($0))" } ?? "") + ":\n  " + choice.table.joined(separator: "\n  ")
    }

    /// The algorithms of `model`'s convolutions as letters, "o" own float32, "b" oneDNN bfloat16.
    public static func letters(of model: Recognizer) -> String {
        model.convolutions.map { $0.algorithm == .bfloat16 ? "b" : "o" }.joined()
    }

    /// Sets `model`'s convolutions to the algorithms of `letters`.
    public static func use(_ letters: String, on model: Recognizer) {
        for (conv, letter) in zip(model.convolutions, letters) { conv.algorithm = letter == "b" ? .bfloat16 : .own }
    }

    /// "31 of 57 convolutions in bfloat16; their forward and backward 402 ms in float32, 261 ms as chosen".
    static func summary(of choice: ConvolutionChoice) -> String {
        let bfloat16 = choice.algorithms.filter { $0 == .bfloat16 }.count
        let own = choice.shapes.reduce(0) { $0 + ($1.milliseconds[.own] ?? 0) }
        let chosen = choice.shapes.reduce(0) { $0 + ($1.milliseconds[$1.chosen] ?? 0) }
        let failed = choice.shapes.filter { ($0.discrepancy ?? 0) > ConvolutionChoice.tolerance }.count
        return "\(bfloat16) of \(choice.algorithms.count) convolutions in bfloat16"
            + String(format: "; their forward and backward %.0f ms in float32, %.0f ms as chosen", own, chosen)
            + (failed > 0 ? "; oneDNN FAILED its check on \(failed) shapes, which stay float32" : "")
    }

    /// Keeps a choice; nil, or why it could not be kept.
    static func keep(key: String, choice: ConvolutionChoice, summary: String, in path: String? = file) -> String? {
        guard let path else { return "neither XDG_CACHE_HOME nor HOME is set" }
        var all = kept(in: path)
        all[key] = (choice.algorithms.map { $0 == .bfloat16 ? "b" : "o" }.joined(), summary)
        let lines =
            [
                "# the algorithm of each convolution in bfloat16 precision, per machine, network and clip (o own float32, b oneDNN bfloat16)"
            ]
            + all.keys.sorted().map { "\($0)\t\(all[$0]!.algorithms)\t\(all[$0]!.summary)" }
        do {
            try Files.makeDirectory((path as NSString).deletingLastPathComponent, what: "cache folder")
            try Files.write(lines.joined(separator: "\n") + "\n", to: path, what: "convolution choices")
            return nil
        } catch { return error.description }
    }
}
