import ArgumentParser
import Foundation
import NLTensor

/// What users of mmaction2 and PySlowFast type out of habit, answered with this project's way:
/// `train.py CONFIG`, `test.py CONFIG CHECKPOINT`, `--cfg-options k=v`, a checkpoint path that is
/// not quite right.
public enum Habits {
    /// Words given without an option (`nltrain configs/x.cfg`, `nleval CONFIG CKPT`): what to
    /// type instead; nil when there are none.
    public static func positionalProblem(_ words: [String], checkpointOption: String) -> String? {
        guard let word = words.first else { return nil }
        if word.hasSuffix(".py") {
            return "\(word) is an mmaction2 config: this project reads plain-text ones (configs/README.md); "
                + "give one as --config FILE.cfg"
        }
        if [".safetensors", ".pth", ".pkl"].contains(where: word.hasSuffix) {
            return "give the checkpoint as \(checkpointOption) \(word)"
        }
        return word.hasSuffix(".cfg") ? "give the config as --config \(word)" : "unexpected argument '\(word)'"
    }

    /// mmaction2's --cfg-options, answered.
    public static let cfgOptionsProblem =
        "--cfg-options is mmaction2's; here each key is its own --set section.key=value, with this project's "
        + "keys (configs/README.md), such as --set train.lr=0.001"

    /// A checkpoint path that names no file: the error, with the checkpoints the user may mean
    /// (the work directories' best.safetensors under the current folder, the .safetensors files
    /// beside the path); nil when the file is there.
    public static func missingCheckpoint(_ path: String) -> FileError? {
        guard !FileManager.default.fileExists(atPath: path) else { return nil }
        let manager = FileManager.default
        let runs = ((try? manager.contentsOfDirectory(atPath: "work_dirs")) ?? []).sorted().map {
            "work_dirs/\($0)/best.safetensors"
        }
        let folder = (path as NSString).deletingLastPathComponent
        let beside = ((try? manager.contentsOfDirectory(atPath: folder.isEmpty ? "." : folder)) ?? []).sorted()
            .filter { $0.hasSuffix(".safetensors") }.map { folder.isEmpty ? $0 : "\(folder)/\($0)" }
        let seen = Array(Set(runs + beside).filter { manager.fileExists(atPath: $0) }).sorted()
        return FileError(
            path,
            "no such checkpoint"
                + (seen.isEmpty
                    ? "" : "; there are \(seen.prefix(6).joined(separator: ", "))\(seen.count > 6 ? ", ..." : "")"))
    }
}
