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

    /// Guards the job below and the workers' sleep.
    private let condition = NSCondition()
    private var body: ((Int) -> Void)?
    private var count = 0
    /// Workers that may still join the current job: the caller's thread count, less the caller.
    private var seats = 0
    private var workers = 0

    /// Bumped for each job, under `condition`; workers watch it while they spin.
    private let generation = Atomic<Int>(0)
    /// The next item to take, and the workers inside the current job.
    private let next = Atomic<Int>(0)
    private let active = Atomic<Int>(0)
    private let inUse = Atomic<Bool>(false)

    /// Runs `body(i)` for every i in 0..<count on this thread and up to `threads - 1` workers;
    /// returns false, having run nothing, when another thread's loop holds the pool.
    func run(_ count: Int, threads: Int, _ body: (Int) -> Void) -> Bool {
        guard inUse.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { inUse.store(false, ordering: .releasing) }
        withoutActuallyEscaping(body) { body in
            condition.lock()
            while workers < threads - 1 { startWorker() }
            (self.body, self.count, seats) = (body, count, threads - 1)
            next.store(0, ordering: .relaxed)
            generation.add(1, ordering: .releasing)
            condition.broadcast()
            condition.unlock()

            Parallel.runInside { work(body, count) }
            // Every item is taken; wait for the workers that took some to leave. With the lock
            // held none can join, so none is still taking items when the next job resets `next`.
            condition.lock()
            spin { active.load(ordering: .acquiring) == 0 }
            self.body = nil
            condition.unlock()
        }
        return true
    }

    /// Takes items until none is left.
    private func work(_ body: (Int) -> Void, _ count: Int) {
        while true {
            let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
            guard i < count else { return }
            body(i)
        }
    }

    /// Waits for `done`, yielding the core every so often.
    private func spin(until done: () -> Bool) {
        var spins = 0
        while !done() {
            spins += 1
            if spins % 256 == 0 { sched_yield() }
        }
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
            let idleSince = DispatchTime.now().uptimeNanoseconds
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                guard spins % 256 == 0 else { continue }
                sched_yield()
                if DispatchTime.now().uptimeNanoseconds - idleSince > Self.spinNanoseconds {
                    condition.lock()
                    while generation.load(ordering: .relaxed) == seen { condition.wait() }
                    condition.unlock()
                }
            }
            let (job, joined) = joinAndWork()
            if joined { active.subtract(1, ordering: .releasing) }
            seen = job
        }
    }

    /// Joins the current job if it has a seat left and works on it; returns the job's generation
    /// and whether it joined. The job's closure is released on return, before `active` says this
    /// worker has left.
    private func joinAndWork() -> (generation: Int, joined: Bool) {
        condition.lock()
        let job = generation.load(ordering: .relaxed)
        guard let body, seats > 0 else { condition.unlock(); return (job, false) }
        seats -= 1
        active.add(1, ordering: .relaxed)
        let count = self.count
        condition.unlock()
        work(body, count)
        return (job, true)
    }
}
