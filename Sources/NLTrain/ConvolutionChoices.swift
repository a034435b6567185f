import Foundation
import NLLayers
import NLModels
import NLTensor

/// Which algorithm each convolution of a network runs in bfloat16 precision, chosen on this
/// machine (ConvolutionChoice: the own float32 paths and oneDNN's bfloat16 timed on the network's
/// own shapes, oneDNN checked against its emulation first) and kept beside the self-check's
/// verdicts, one line per (machine and libraries, threads, network, clip, and whether training's
/// passes or evaluation's forward alone): the first run on them takes a few seconds more, the
/// others none. float32 runs the own paths, with nothing to time.
public enum ConvolutionChoices {
    /// $XDG_CACHE_HOME/nl-i3d/convolutions.txt, or ~/.cache/nl-i3d/convolutions.txt.
    public static var file: String? {
        SelfCheck.verdictFile.map { ($0 as NSString).deletingLastPathComponent + "/convolutions.txt" }
    }

    /// What a choice holds for: the self-check's configuration key (CPU, OpenBLAS, threads, build),
    /// oneDNN's version, the network and its clip, and " forward only" for evaluation's.
    static func key(spec: ModelSpec, clipShape: [Int], training: Bool) -> String {
        machine + "network \(SelfCheck.digest(String(describing: spec))) "
            + "on \(clipShape.map(String.init).joined(separator: "x"))" + (training ? "" : " forward only")
    }

    /// The part of every key that names this machine, its libraries and the check oneDNN passed.
    static var machine: String {
        "\(SelfCheck.key(.current)); oneDNN \(Precision.oneDNNVersion) choice \(ConvolutionChoice.version); "
    }

    /// The kept choices by key: (one letter per convolution, `letters`; summary).
    static func kept(in path: String? = file) -> [String: (algorithms: String, summary: String)] {
        var found: [String: (String, String)] = [:]
        for fields in SelfCheck.cacheRecords(in: path) where fields.count == 3 && algorithms(fields[1]) != nil {
            found[fields[0]] = (fields[1], fields[2])
        }
        return found
    }

    /// The kept lines of this machine, for nlbench verify: "network ... on NxTxHxW: summary".
    public static var thisMachine: [String] {
        kept().filter { $0.key.hasPrefix(machine) }.map { "\($0.key.dropFirst(machine.count)): \($0.value.summary)" }
            .sorted()
    }

    /// Makes `model` compute in `precision` (Layer.use), its convolutions as chosen for it at
    /// `clipShape` (N, T, H, W) where that is bf16, for training's passes (`training`) or
    /// evaluation's forward alone: kept, or measured now and kept (used but not kept where the
    /// machine was busy while it was measured: `busy`). In bf16, `log` hears what runs
    /// (with the table of times when measured now), and before a measurement that it begins,
    /// which takes seconds to a minute; in fp32, where there is nothing to choose, nothing. A
    /// `shouldStop` that says so ends the timing early: nothing is kept, every convolution stays
    /// bfloat16.
    public static func apply(
        to model: Recognizer, clipShape: [Int], precision: Precision, training: Bool, log: (String) -> Void,
        shouldStop: () -> Bool = { false }
    ) {
        model.use(precision)
        guard precision == .bf16 else { return }
        let (key, all) = (key(spec: model.spec, clipShape: clipShape, training: training), kept())
        if let kept = all[key], let chosen = algorithms(kept.algorithms), chosen.count == model.convolutions.count {
            model.use(chosen)
            return log("precision bf16: \(kept.summary) (chosen on this machine before: \(file ?? ""))")
        }
        log(
            "precision bf16: timing the own float32 paths against oneDNN's bfloat16 on each convolution of the network"
                + (training ? "" : ", forward") + ", once for this machine, network and clip")
        let (started, waiting) = (Date(), CPUWait())
        guard
            let choice = Recognizer.tuneConvolutions(
                spec: model.spec, clipShape: clipShape, candidates: [.own, .bfloat16], training: training,
                shouldStop: shouldStop)
        else { return log("precision bf16: stopped before the convolutions were timed; nothing kept") }
        model.use(choice.algorithms)
        let summary = summary(of: choice, training: training)
        let problem =
            busy(waiting?.share(threads: Parallel.threadCount))
            ?? SelfCheck.writeCache(
                all.merging([key: (letters(choice.algorithms), summary)]) { $1 }.sorted { $0.key < $1.key }.map {
                    [$0.key, $0.value.algorithms, $0.value.summary]
                },
                header: "the algorithm of each convolution in bfloat16 precision, per machine, network and clip "
                    + "(o own float32, b oneDNN bfloat16)",
                to: file, what: "convolution choices")
        log(
            "precision bf16: \(summary), timed now on the network's shapes "
                + String(format: "(%.1f s)", Date().timeIntervalSince(started))
                + (problem.map { " (not kept: \($0))" } ?? "") + ":\n  " + choice.table.joined(separator: "\n  "))
    }

    /// The share of the timing's thread-time spent waiting for a CPU beyond which the machine is
    /// taken to have been busy (other processes on its cores, or more threads than cores): a
    /// choice timed so is used by this run but not kept. One busy core beside the timing on 2
    /// cores had it put 25-41 of nl_i3d_r50's 73 convolutions in bfloat16, for a step 1.2-1.4x
    /// as long, against 72 on a quiet machine.
    static let busyShare = 0.05

    /// Why a choice timed while the threads waited `share` of their time for a CPU is not kept;
    /// nil where it is, or where NL_KEEP_CHOICE_WHEN_BUSY=1 says to keep it anyway (a machine that
    /// is never quieter; the tests, whose suites run beside the commands they start).
    static func busy(_ share: Double?) -> String? {
        guard let share, share > busyShare, ProcessInfo.processInfo.environment["NL_KEEP_CHOICE_WHEN_BUSY"] != "1"
        else { return nil }
        return String(format: "the machine was busy: its threads waited for a CPU %.0f%% of the time", share * 100)
            + "; the next run times them again"
    }

    /// Algorithms as letters, one a convolution: "o" the own float32 paths, "b" oneDNN's bfloat16.
    public static func letters(_ algorithms: [ConvolutionAlgorithm]) -> String {
        algorithms.map { $0 == .bfloat16 ? "b" : "o" }.joined()
    }

    /// The algorithms `letters` name; nil where a letter is neither.
    public static func algorithms(_ letters: String) -> [ConvolutionAlgorithm]? {
        let chosen = letters.compactMap { ["o": ConvolutionAlgorithm.own, "b": .bfloat16][$0] }
        return chosen.count == letters.count ? chosen : nil
    }

    /// "31 of 57 convolutions in bfloat16; their forward and backward 402 ms in float32, 261 ms as
    /// chosen" ("their forward" for evaluation's).
    static func summary(of choice: ConvolutionChoice, training: Bool) -> String {
        let bfloat16 = choice.algorithms.filter { $0 == .bfloat16 }.count
        let own = choice.shapes.reduce(0) { $0 + ($1.milliseconds[.own] ?? 0) }
        let chosen = choice.shapes.reduce(0) { $0 + ($1.milliseconds[$1.chosen] ?? 0) }
        let failed = choice.shapes.filter { ($0.discrepancy ?? 0) > ConvolutionChoice.tolerance }.count
        return "\(bfloat16) of \(choice.algorithms.count) convolutions in bfloat16"
            + String(
                format: "; their forward%@ %.0f ms in float32, %.0f ms as chosen", training ? " and backward" : "", own,
                chosen)
            + (failed > 0 ? "; oneDNN FAILED its check on \(failed) shapes, which stay float32" : "")
    }
}
