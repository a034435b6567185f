import Foundation
import NLTensor
import NLVideo

/// The videos that fail to decode, and those only partly there (truncated), each reported once
/// and listed in the work directory's bad_videos.txt ("path<TAB>what is wrong" a line; a
/// truncated video's line says "usable, truncated: ..."). Failures count against the allowed
/// fraction; truncated videos, whose frames there are used, do not.
public final class BadVideoLog: @unchecked Sendable {
    public let file: String?
    public let maxFraction: Double
    /// Called once per video, with a line to log.
    public let report: @Sendable (String) -> Void
    /// What becomes of a failed video, for the log: "skipping" (training), "counting as a miss".
    public let action: String
    private var failed: [String: String] = [:]
    private var partial: [String: String] = [:]
    private let lock = NSLock()
    private static let usable = "usable, "

    /// Videos a former run listed in `file` are known (not reported again) when they are among
    /// `dataset`'s: the others have left the annotations and count against nothing.
    public init(
        file: String?, maxFraction: Double, dataset: Dataset? = nil, action: String = "skipping",
        report: @escaping @Sendable (String) -> Void
    ) {
        (self.file, self.maxFraction, self.action, self.report) = (file, maxFraction, action, report)
        guard let file, FileManager.default.fileExists(atPath: file),
            let lines = try? TextFile.lines(file, what: "list of bad videos")
        else { return }
        let current = dataset.map { Set($0.entries.map(\.path)) }
        for (_, line) in lines {
            let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
            let (path, message) = (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
            guard !path.isEmpty, current?.contains(path) ?? true else { continue }
            if message.hasPrefix(Self.usable) {
                partial[path] = String(message.dropFirst(Self.usable.count))
            } else {
                failed[path] = message
            }
        }
    }

    /// Videos that have failed, with their errors.
    public var failures: [String: String] { lock.withLock { failed } }

    /// Notes a failure; returns an error when more than `maxFraction` of the dataset has failed.
    func record(_ entry: VideoEntry, error: Error, datasetSize: Int) -> DataError? {
        lock.withLock {
            if failed[entry.path] == nil {
                let message = "\(error)".replacingOccurrences(of: "\n", with: " ")
                failed[entry.path] = message
                report("\(action) a video that does not decode (\(entry.source)): \(message)")
                append(entry.path, message)
            }
            let fraction = Double(failed.count) / Double(max(datasetSize, 1))
            guard fraction > maxFraction else { return nil }
            return DataError(
                "\(failed.count) of \(datasetSize) videos failed to decode (\(String(format: "%.1f", fraction * 100))%, more than max_bad_fraction \(maxFraction)); they are listed in \(file ?? "the log")"
            )
        }
    }

    /// Notes a video read only in part (`truncation` says what is missing).
    func notePartial(_ entry: VideoEntry, truncation: String) {
        lock.withLock {
            guard partial[entry.path] == nil else { return }
            partial[entry.path] = truncation
            report("using the frames there of a video cut short (\(entry.source)): \(entry.path): \(truncation)")
            append(entry.path, Self.usable + truncation)
        }
    }

    private func append(_ path: String, _ message: String) {
        guard let file else { return }
        Files.append("\(path)\t\(message)\n", to: file)
    }
}
