import Dispatch
import Foundation
import NLData
import NLTrain
import NLDistributed
import NLLayers
import NLTensor
import NLVideo

/// The decode benchmark: training clips (clip_len frames at frame_interval from a random start,
/// RGB at a short side) read from a fresh reader each, as the loader reads them, on one or
/// several threads at once.
public struct DecodeBenchmark: Sendable {
    public var files: [String]
    public var clipLength = 32
    public var frameInterval = 2
    public var shortSide = 256
    public var clips = 200
    public var workers = 1
    public var seed: UInt64 = 0

    public init(files: [String]) { self.files = files }

    /// Reads `clips` clips, file after file; returns how long it took. Each worker opens, reads and
    /// closes its own readers (one decoder thread each).
    public func run() throws -> Throughput {
        let infos = try files.map { try VideoReader(path: $0).info.frames }
        let span = (clipLength - 1) * frameInterval + 1
        let failures = Failures()
        let start = Date()
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var generator = SeededGenerator(seed: seed, stream: UInt64(worker))
            for clip in stride(from: worker, to: clips, by: workers) {
                let file = clip % files.count
                let first = generator.below(max(1, infos[file] - span + 1))
                let indices = (0..<clipLength).map { min(first + $0 * frameInterval, infos[file] - 1) }
                do {
                    let reader = try VideoReader(path: files[file])
                    _ = try reader.frames(at: indices, size: .shortSide(shortSide))
                } catch {
                    failures.record(error)
                }
            }
        }
        if let error = failures.first { throw error }
        return Throughput(clips: clips, seconds: Date().timeIntervalSince(start))
    }

    /// The first error any worker met.
    private final class Failures: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var first: Error?
        func record(_ error: Error) { lock.withLock { if first == nil { first = error } } }
    }
}
