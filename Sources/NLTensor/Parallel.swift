import COpenBLAS
import Foundation
import Synchronization

/// The project's one level of parallelism. OpenBLAS is kept single-threaded; every parallel loop,
/// GEMMs split into per-thread pieces included, goes through here, and a loop started inside
/// another one runs serially on its caller's thread, so parallelism never nests. The loops run on
/// the project's own pool (ThreadPool.swift), or, where oneDNN computes too (bfloat16), on
/// OpenMP's team, which oneDNN's loops share (OpenMP.swift).
public enum Parallel {
    /// Threads used by parallel loops: `NL_THREADS` if set, otherwise `usableCores`
    /// (UsableCores.swift).
    public static var threadCount: Int { state.threads }

    /// Sets the number of threads for later loops (at least 1). Call before work starts.
    public static func setThreadCount(_ count: Int) { state.threads = max(1, count) }

    /// Whether loops run on OpenMP's team instead of the own pool: set where a network computes in
    /// bfloat16 (Layer.use). The team's threads spin without yielding while they wait, which
    /// costs a float32 step that shares its cores with another process up to 4x (the own pool
    /// yields the core); in bfloat16 the team is faster alone and shared (OpenMP.swift).
    nonisolated(unsafe) public static var sharesOpenMPThreads = false

    /// Runs `body(i)` for every i in 0..<count, spread over the threads. Each i runs exactly once;
    /// the order of calls is unspecified, so bodies must write disjoint memory.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 1 || threadCount == 1 || isInsideLoop {
            for i in 0..<count { body(i) }
        } else if !(sharesOpenMPThreads
            ? OpenMP.run(count, threads: min(threadCount, count), body)
            : ThreadPool.shared.run(count, threads: min(threadCount, count), body))
        {
            runInside { for i in 0..<count { body(i) } }  // another thread's loop holds the workers
        }
    }

    /// Runs `body(i)` for each item `next` hands out below `count`, until none is left: how the
    /// threads of a loop, on either pool, share its items as they come free.
    static func takeItems(from next: borrowing Atomic<Int>, count: Int, _ body: (Int) -> Void) {
        while true {
            let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
            guard i < count else { return }
            body(i)
        }
    }

    /// Runs `body` as the body of a parallel loop: loops it starts run serially.
    static func runInside(_ body: () -> Void) {
        let outer = isInsideLoop
        isInsideLoop = true
        body()
        isInsideLoop = outer
    }

    /// Splits 0..<count into at most `threadCount` contiguous ranges of at least `minimumChunk`
    /// elements (a split that depends only on count and the thread count, so per-range partial
    /// results are reproducible) and runs `body(chunk, range)` for each, in parallel.
    public static func forRanges(_ count: Int, minimumChunk: Int = 1, _ body: (Int, Range<Int>) -> Void) {
        let ranges = split(count, minimumChunk: minimumChunk)
        forEach(ranges.count) { body($0, ranges[$0]) }
    }

    /// The ranges `forRanges` uses: as equal as possible, at most `threadCount` of them.
    public static func split(_ count: Int, minimumChunk: Int = 1) -> [Range<Int>] {
        guard count > 0 else { return [] }
        let pieces = max(1, min(isInsideLoop ? 1 : threadCount, count / max(minimumChunk, 1)))
        return (0..<pieces).map { p in (count * p / pieces)..<(count * (p + 1) / pieces) }
    }

    /// True on a thread that is running the body of a parallel loop.
    public static var isInsideLoop: Bool {
        get { pthread_getspecific(state.insideKey) != nil }
        set { pthread_setspecific(state.insideKey, newValue ? UnsafeRawPointer(bitPattern: 1) : nil) }
    }

    private final class State: @unchecked Sendable {
        var threads: Int
        let insideKey: pthread_key_t

        init() {
            // NL_THREADS, else OMP_NUM_THREADS, which PyTorch users and mpirun scripts set (its
            // first level: "4,2" sets nested OpenMP levels).
            let environment = ProcessInfo.processInfo.environment
            let (name, setting) =
                ["NL_THREADS", "OMP_NUM_THREADS"].lazy.compactMap { name in
                    environment[name].flatMap { $0.isEmpty ? nil : (name, $0) }
                }.first ?? ("", "")
            let first = setting.split(separator: ",", omittingEmptySubsequences: false).first ?? ""
            let fromEnvironment = Int(first.trimmingCharacters(in: .whitespaces)).flatMap { $0 > 0 ? $0 : nil }
            // More threads than cores take turns on them (4,097 on 2 cores ran 13x slower): said,
            // and no more than 4 a core.
            let cores = Parallel.usableCores
            threads = min(fromEnvironment ?? cores, 4 * cores)
            if !setting.isEmpty, fromEnvironment == nil {
                Files.emit(
                    "warning: \(name)='\(setting)' is not a positive whole number; using \(threads) thread\(threads == 1 ? "" : "s"), the cores this process may use\n",
                    to: .standardError)
            } else if let asked = fromEnvironment, asked > cores {
                Files.emit(
                    "warning: \(name)=\(asked) is more than the \(cores) core\(cores == 1 ? "" : "s") this process may use, which its threads "
                        + "take turns on; using \(threads)\(threads < asked ? " (4 a core at most)" : "")\n",
                    to: .standardError)
            }
            var key = pthread_key_t()
            pthread_key_create(&key, nil)
            insideKey = key
            // One level of parallelism: ours. OpenBLAS runs each call on its caller's thread.
            openblas_set_num_threads(1)
        }
    }

    private static let state = State()
}
