import Dispatch
import Foundation
import NLTensor
import NLVideo

/// Reads every video of a dataset, several at once, to find the ones training would skip.
public enum DatasetCheck {
    /// A video that is missing, cut short or does not decode, with its annotation line.
    public struct Problem: Sendable {
        public enum Kind: String, Sendable, CaseIterable { case missing, truncated, undecodable }
        public let kind: Kind
        public let path: String
        public let source: String
        public let message: String
    }

    /// The dataset's missing videos, those cut short (their container promised more frames), and
    /// those that fail to open or decode: by default the first, middle and last frames (what most
    /// damage breaks), with `everyFrame` all of them. `workers` videos are read at once.
    /// `advance` is called after each video (from any of the workers).
    public static func run(
        _ dataset: Dataset, workers: Int, everyFrame: Bool = false, advance: @Sendable () -> Void = {}
    ) -> [Problem] {
        var problems = dataset.missing.map {
            Problem(kind: .missing, path: $0.path, source: $0.source, message: "missing: no video at \($0.path)")
        }
        let found = Found()
        let next = Counter()
        DispatchQueue.concurrentPerform(iterations: max(1, workers)) { _ in
            while let i = next.take(below: dataset.entries.count) {
                let entry = dataset.entries[i]
                var truncation: String?
                do {
                    let reader = try VideoReader(path: entry.path)
                    truncation = reader.info.truncation
                    let n = reader.info.frames
                    if everyFrame {
                        for start in stride(from: 0, to: n, by: 64) {
                            _ = try reader.frames(at: Array(start..<min(n, start + 64)), size: .shortSide(32))
                        }
                    } else {
                        _ = try reader.frames(at: Array(Set([0, n / 2, n - 1])).sorted(), size: .shortSide(32))
                    }
                    // The frames there decode, but the file lost the rest.
                    if let truncation {
                        found.add(
                            i,
                            Problem(
                                kind: .truncated, path: entry.path, source: entry.source,
                                message: "\(entry.path): \(truncation)"))
                    }
                } catch {
                    found.add(
                        i,
                        truncation.map {
                            Problem(
                                kind: .truncated, path: entry.path, source: entry.source,
                                message: "\(entry.path): \($0); and \((error as? VideoError)?.message ?? "\(error)")")
                        }
                            ?? Problem(kind: .undecodable, path: entry.path, source: entry.source, message: "\(error)"))
                }
                advance()
            }
        }
        problems += found.sorted
        return problems
    }

    private final class Counter: @unchecked Sendable {
        private var value = 0
        private let lock = NSLock()
        func take(below limit: Int) -> Int? {
            lock.withLock {
                guard value < limit else { return nil }
                value += 1
                return value - 1
            }
        }
    }

    private final class Found: @unchecked Sendable {
        private var items: [(Int, Problem)] = []
        private let lock = NSLock()
        func add(_ index: Int, _ problem: Problem) { lock.withLock { items.append((index, problem)) } }
        var sorted: [Problem] { lock.withLock { items.sorted { $0.0 < $1.0 }.map(\.1) } }
    }
}
