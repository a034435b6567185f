import Foundation
import NLData
import NLLayers
import NLModels
import NLTensor
import NLVideo

/// When the self-check runs, where its verdicts are kept, and what the commands do when it fails.
extension SelfCheck {
    /// The file of verdicts, one line per configuration: $XDG_CACHE_HOME/nl-i3d/self-check.txt, or
    /// ~/.cache/nl-i3d/self-check.txt; nil without either (the check then runs every time).
    public static var verdictFile: String? {
        let environment = ProcessInfo.processInfo.environment
        let base =
            environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["HOME"].flatMap { $0.isEmpty ? nil : $0 + "/.cache" }
        return base.map { $0 + "/nl-i3d/self-check.txt" }
    }

    /// What a verdict holds for: the CPU (model and a digest of its flags), OpenBLAS's version and
    /// kernel, the threads, the build target, and the check's own version.
    public static func key(_ configuration: Configuration) -> String {
        let cpu = CPUFeatures.current
        return
            "\(cpu.model) (flags \(digest(cpu.flags.sorted().joined(separator: " ")))); OpenBLAS \(BLASKernel.version) \(configuration.kernel); "
            + "\(configuration.threads) threads; \(BuildTarget.name); check \(version)"
    }

    /// A short name for `text` in a cache key: its FNV-1a hash, in hexadecimal.
    static func digest(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(hash, radix: 16)
    }

    /// A kept verdict: passed or not, when, and the check's summary.
    public struct Verdict: Sendable {
        public var passed: Bool
        public var date: String
        public var summary: String
    }

    /// The verdicts kept in `path` by key. Lines: key TAB passed|FAILED TAB date TAB summary.
    public static func verdicts(in path: String? = verdictFile) -> [String: Verdict] {
        var found: [String: Verdict] = [:]
        for fields in cacheRecords(in: path) where fields.count == 4 && ["passed", "FAILED"].contains(fields[1]) {
            found[fields[0]] = Verdict(passed: fields[1] == "passed", date: fields[2], summary: fields[3])
        }
        return found
    }

    /// The records of a cache file in the cache folder (this file's, or ConvolutionChoices'): its
    /// lines but the comments, each split at tabs. None when the file cannot be read.
    static func cacheRecords(in path: String?) -> [[String]] {
        guard let path, let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("#") }.map {
            $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        }
    }

    /// Writes a cache file: `header` as a comment, then `records` tab-separated, one a line;
    /// nil, or why it could not be written.
    static func writeCache(_ records: [[String]], header: String, to path: String?, what: String) -> String? {
        guard let path else { return "neither XDG_CACHE_HOME nor HOME is set" }
        let lines = ["# \(header)"] + records.map { $0.joined(separator: "\t") }
        do {
            try Files.makeDirectory((path as NSString).deletingLastPathComponent, what: "cache folder")
            try Files.write(lines.joined(separator: "\n") + "\n", to: path, what: what)
            return nil
        } catch { return error.description }
    }

    /// Keeps `result`'s verdict in `path`; nil, or why it could not be kept.
    @discardableResult
    public static func keep(_ result: Result, in path: String? = verdictFile) -> String? {
        var all = verdicts(in: path)
        all[key(result.configuration)] = Verdict(
            passed: result.passed, date: ISO8601DateFormatter().string(from: Date()), summary: result.summary)
        return writeCache(
            all.keys.sorted().map { [$0, all[$0]!.passed ? "passed" : "FAILED", all[$0]!.date, all[$0]!.summary] },
            header:
                "nltrain and nleval's numerical self-check, one verdict per configuration (nlbench verify runs it again)",
            to: path, what: "self-check verdicts")
    }

    /// The configurations to fall back to, in order, when `configuration` fails: an older kernel
    /// on the same threads (Haswell, then Prescott, OpenBLAS's plainest), then Prescott on one
    /// thread. Only kernels this CPU runs.
    public static func fallbacks(after configuration: Configuration, on cpu: CPUFeatures) -> [Configuration] {
        let generation = BLASKernel.generation(of: configuration.kernel) ?? Int.max
        var ladder = ["Haswell", "Prescott"].filter {
            BLASKernel.generation(of: $0)! < generation && BLASKernel.missing(for: $0, on: cpu) == nil
        }
        .map { Configuration(kernel: $0, threads: configuration.threads) }
        if configuration.threads > 1 {
            ladder.append(Configuration(kernel: ladder.last?.kernel ?? configuration.kernel, threads: 1))
        }
        return ladder
    }

    /// Set in the environment of a command that started itself again on a fallback: why.
    static let fallbackVariable = "NL_SELF_CHECK_FELL_BACK"

    /// Called by nltrain and nleval before they train or evaluate (before MPI starts): checks
    /// this process's configuration unless a verdict is kept. When it fails, moves to the first
    /// fallback not known to fail: fewer threads in this process, another kernel by starting the
    /// command again with OPENBLAS_CORETYPE set. Returns the line for the log ("self-check:
    /// passed ...") and whether it is news (the check ran now, or fell back); throws when no
    /// configuration computes right.
    public static func ensure() throws -> (line: String, isNews: Bool) {
        var previous = ProcessInfo.processInfo.environment[fallbackVariable].map { $0 + "; fell back to " } ?? ""
        var configuration = Configuration.current
        while true {
            let kept = verdicts()[key(configuration)]
            let verdict: Verdict, ranNow: Bool
            if let kept {
                (verdict, ranNow) = (kept, false)
            } else {
                let result = run()
                let problem = keep(result)
                verdict = Verdict(
                    passed: result.passed, date: "now",
                    summary: result.summary + (problem.map { " (not kept: \($0))" } ?? ""))
                ranNow = true
            }
            let said =
                "\(configuration): "
                + (ranNow ? verdict.summary : "\(verdict.passed ? "passed" : "FAILED") when checked on \(verdict.date)")
            if verdict.passed { return ("self-check: \(previous)\(said)", ranNow || !previous.isEmpty) }

            let failed = "\(previous)\(said)"
            let known = verdicts()
            guard
                let next = fallbacks(after: configuration, on: .current).first(where: {
                    known[key($0)]?.passed != false
                })
            else {
                throw SelfCheckFailure(
                    message: "\(failed); no fallback computes right either. Run nlbench verify for the details, "
                        + "and try another OpenBLAS (OPENBLAS_CORETYPE, or a newer libopenblas)")
            }
            if next.kernel == configuration.kernel {
                Parallel.setThreadCount(next.threads)
                configuration = next
                previous = "\(failed); fell back to "
                continue
            }
            setenv("OPENBLAS_CORETYPE", next.kernel, 1)
            setenv("NL_THREADS", String(next.threads), 1)
            setenv(fallbackVariable, failed, 1)
            BLASKernel.restart()
            throw SelfCheckFailure(message: "\(failed); could not start again on \(next)")
        }
    }
}

/// No configuration of OpenBLAS this machine offers computes right (exit 70).
public struct SelfCheckFailure: Error, CustomStringConvertible {
    public let message: String
    public var description: String { "self-check: \(message)" }
}
