import Dispatch
import Foundation
import Synchronization

/// The worker threads behind `Parallel.forEach`, kept awake between loops.
///
/// A training step runs about 800 parallel loops (R50 at 1x32x224), most of them a few
/// milliseconds long. Through Dispatch's concurrentPerform each loop waited for a sleeping worker
/// to wake at its start and for the caller to wake at its end; sampling both cores over such a
/// step, only one of the two ran it in 13% of the samples. Here an idle worker spins for
/// `spinNanoseconds` before it sleeps, and the caller spins until the workers that took items
/// are done, so a loop starts and ends within microseconds. Spinning yields the core every few
/// hundred checks, so it costs little when other threads want the core.
///
/// One caller at a time: a loop started from another thread while one runs (a data loader's
/// thread, say) gets `false` from `run` and runs serially on its own thread.
final class ThreadPool: @unchecked Sendable {
    static let shared = ThreadPool()

    /// How long an idle worker keeps looking for the next loop before it sleeps: longer than the
    /// serial work between two loops of a step, short against a step.
    static let spinNanoseconds: UInt64 = 2_000_000

    /// Guards the workers' sleep and the job's publication.
    private let condition = NSCondition()
    /// The current job, written by its caller while no worker is in a job (`active` 0, `seats` 0)
    /// and read by a worker only after it took a seat, which the caller's release of `seats`
    /// orders after these writes.
    private var body: ((Int) -> Void)?
    private var count = 0
    private var workers = 0

    /// Bumped for each job, under `condition`; workers watch it while they spin.
    private let generation = Atomic<Int>(0)
    /// Workers that may still join the current job (the caller's thread count, less the caller),
    /// taken without a lock so that many idle workers do not queue on one; the next item to take;
    /// and the workers that are joining or inside a job.
    private let seats = Atomic<Int>(0)
    private let next = Atomic<Int>(0)
    private let active = Atomic<Int>(0)
    private let inUse = Atomic<Bool>(false)

    /// Runs `body(i)` for every i in 0..<count on this thread and up to `threads - 1` workers;
    /// returns false, having run nothing, when another thread's loop holds the pool.
    func run(_ count: Int, threads: Int, _ body: (Int) -> Void) -> Bool {
        guard inUse.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            return false
        }
        defer { inUse.store(false, ordering: .releasing) }
        withoutActuallyEscaping(body) { body in
            condition.lock()
            while workers < threads - 1 { startWorker() }
            (self.body, self.count) = (body, count)
            next.store(0, ordering: .relaxed)
            seats.store(threads - 1, ordering: .sequentiallyConsistent)
            generation.add(1, ordering: .releasing)
            condition.broadcast()
            condition.unlock()

            Parallel.runInside { Parallel.takeItems(from: next, count: count, body) }
            // Every item is taken. Close the seats, then wait for the workers that are joining or
            // working to leave: none may still read the job or take items when the next job
            // replaces them.
            seats.store(0, ordering: .sequentiallyConsistent)
            spin(until: { active.load(ordering: .sequentiallyConsistent) == 0 })
            self.body = nil
        }
        return true
    }

    /// Waits for `done`, yielding the core every 256 checks; gives up (false) once `limit`
    /// nanoseconds have passed.
    @discardableResult
    private func spin(until done: () -> Bool, giveUpAfter limit: UInt64 = .max) -> Bool {
        let start = DispatchTime.now().uptimeNanoseconds
        var spins = 0
        while !done() {
            spins += 1
            guard spins % 256 == 0 else { continue }
            sched_yield()
            if DispatchTime.now().uptimeNanoseconds - start > limit { return false }
        }
        return true
    }

    /// Called with `condition` held.
    private func startWorker() {
        workers += 1
        let thread = Thread { [self] in workerLoop() }
        thread.stackSize = 8 << 20  // as a pthread's default; Foundation's is smaller
        thread.name = "nl-worker-\(workers)"
        thread.start()
    }

    private func workerLoop() {
        Parallel.isInsideLoop = true  // loops inside a body run serially
        var seen = 0
        while true {
            if !spin(until: { generation.load(ordering: .acquiring) != seen }, giveUpAfter: Self.spinNanoseconds) {
                condition.lock()
                while generation.load(ordering: .relaxed) == seen { condition.wait() }
                condition.unlock()
            }
            seen = generation.load(ordering: .acquiring)
            guard seats.load(ordering: .relaxed) > 0 else { continue }
            // Counted as active before taking a seat: a caller that has closed the seats and then
            // sees no worker active knows that none will read its job.
            active.add(1, ordering: .sequentiallyConsistent)
            if takeSeat() { workOnJob() }
            active.subtract(1, ordering: .releasing)
        }
    }

    private func takeSeat() -> Bool {
        var free = seats.load(ordering: .sequentiallyConsistent)
        while free > 0 {
            let (taken, now) = seats.compareExchange(
                expected: free, desired: free - 1, ordering: .sequentiallyConsistent)
            if taken { return true }
            free = now
        }
        return false
    }

    /// Works on the current job; its closure is released on return, before `active` says this
    /// worker has left.
    private func workOnJob() {
        guard let body else { return }
        Parallel.takeItems(from: next, count: count, body)
    }
}
