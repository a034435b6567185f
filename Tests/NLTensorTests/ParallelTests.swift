import Dispatch
import Foundation
import NLTensor
import Synchronization
import Testing

/// `Parallel`'s splits and loops, and the worker pool under them.
struct ParallelTests {
    @Test func rangesCoverEveryIndexOnce() {
        for count in [0, 1, 7, 1000] {
            let ranges = Parallel.split(count, minimumChunk: 3)
            #expect(ranges.flatMap { Array($0) } == Array(0..<count))
        }
    }

    @Test func nestedLoopsRunSerially() {
        var inner = [Bool](repeating: false, count: 8)
        inner.withUnsafeMutableBufferPointer { flags in
            let base = flags.baseAddress!
            Parallel.forEach(8) { i in
                #expect(Parallel.isInsideLoop || Parallel.threadCount == 1)
                #expect(Parallel.split(100).count == 1)
                base[i] = true
            }
        }
        #expect(inner.allSatisfy { $0 })
        #expect(!Parallel.isInsideLoop)
    }

    /// Thousands of loops of every size from 1 to 64 items, back to back and after pauses long
    /// enough for the workers to go to sleep: every item runs exactly once, and the caller sees
    /// every item's writes when the loop returns.
    @Test func everyItemRunsOnceOverManyLoops() {
        let counts = Counts(64)
        var expected = [Int](repeating: 0, count: 64)
        for loop in 0..<3000 {
            if loop % 500 == 499 { usleep(10_000) }
            let n = loop % 64 + 1
            Parallel.forEach(n) { counts.pointer[$0] += 1 }
            for i in 0..<n { expected[i] += 1 }
            #expect(counts.pointer[0] == expected[0] && counts.pointer[n - 1] == expected[n - 1])
        }
        #expect((0..<64).map { counts.pointer[$0] } == expected)
    }

    /// Loops started from several threads at once (a data loader's threads beside training): one
    /// runs on the workers, the others on their own threads, and none loses or repeats an item.
    @Test func loopsFromSeveralThreadsAtOnce() {
        let counts = Counts(4 * 16)
        DispatchQueue.concurrentPerform(iterations: 4) { caller in
            for _ in 0..<500 { Parallel.forEach(16) { counts.pointer[caller * 16 + $0] += 1 } }
        }
        #expect((0..<64).allSatisfy { counts.pointer[$0] == 500 })
    }

    /// The same on OpenMP's team (bfloat16 runs' loops), straight through it: thousands of loops,
    /// every item once, from several threads at once too (one holds the team, the others are
    /// told so and run theirs serially), and two items that wait for each other meet.
    @Test func openMPsTeamRunsEveryItemOnce() {
        let counts = Counts(4 * 64)
        DispatchQueue.concurrentPerform(iterations: 4) { caller in
            for loop in 0..<1000 {
                let n = loop % 64 + 1
                let body: (Int) -> Void = { counts.pointer[caller * 64 + $0] += 1 }
                if !OpenMP.run(n, threads: 2, body) { for i in 0..<n { body(i) } }
            }
        }
        let expected = (0..<64).map { i in (0..<1000).filter { $0 % 64 + 1 > i }.count }
        #expect((0..<4).allSatisfy { c in (0..<64).map { counts.pointer[c * 64 + $0] } == expected })
        // Another test's loop may hold the team (the suites run side by side): wait (up to 30 s in
        // all), and try again.
        var (met, tries) = (false, 0)
        for _ in 0..<3000 where !met && tries < 50 {
            let arrived = Counts(1)
            let ran = OpenMP.run(2, threads: 2) { _ in
                #expect(Parallel.isInsideLoop)
                arrived.add()
                let deadline = DispatchTime.now().uptimeNanoseconds + 200_000_000
                while arrived.value < 2 && DispatchTime.now().uptimeNanoseconds < deadline { sched_yield() }
            }
            met = ran && arrived.value == 2 && arrived.metInTime
            if ran { tries += 1 } else { usleep(10_000) }
        }
        #expect(met)
        #expect(!Parallel.isInsideLoop)
    }

    /// Two items that each wait for the other can only finish on two threads at once: a worker
    /// joins the loop, also when it had gone to sleep before it. (Another test's loop may hold the
    /// workers at that moment; the items then time out and the loop is tried again.)
    @Test(.enabled(if: Parallel.threadCount > 1)) func aSleepingWorkerWakesForTheNextLoop() {
        for pause in [0, 20_000] {
            var met = false
            for _ in 0..<50 where !met {
                usleep(UInt32(pause))
                let arrived = Counts(1)
                Parallel.forEach(2) { _ in
                    arrived.add()
                    let deadline = DispatchTime.now().uptimeNanoseconds + 200_000_000
                    while arrived.value < 2 && DispatchTime.now().uptimeNanoseconds < deadline { sched_yield() }
                }
                met = arrived.value == 2 && arrived.metInTime
            }
            #expect(met, "after a pause of \(pause) µs")
        }
    }
}

/// Integers that loop bodies on any thread write (each its own index) or count up atomically.
private final class Counts: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Int>
    private let arrivals = Atomic<Int>(0)
    private let started = DispatchTime.now().uptimeNanoseconds

    init(_ count: Int) {
        pointer = .allocate(capacity: count)
        pointer.initialize(repeating: 0, count: count)
    }

    deinit { pointer.deallocate() }

    func add() { arrivals.add(1, ordering: .sequentiallyConsistent) }
    var value: Int { arrivals.load(ordering: .sequentiallyConsistent) }
    /// Whether both arrived before either item's deadline (200 ms).
    var metInTime: Bool { DispatchTime.now().uptimeNanoseconds - started < 200_000_000 }
}
