import Foundation
import Synchronization

/// The threads behind `Parallel.forEach` where a network computes in bfloat16: libgomp's, GCC's
/// OpenMP runtime, on which oneDNN runs its bfloat16 convolutions (Debian's libdnnl2 needs
/// libgomp1), so that the project's loops and oneDNN's share one team of threads.
///
/// Beside the own pool (ThreadPool.swift), each of the ~440 oneDNN calls of a bfloat16 step had to
/// wake a sleeping OpenMP thread (about 50 µs each on a Zen 4) while the pool's idle worker spun on
/// that core; letting OpenMP's threads spin instead took the cores the pool's loops needed. One
/// team does neither: its worker spins for a while after a loop, whoever's loop it was, so the
/// next starts within microseconds, then sleeps (GOMP_SPINCOUNT, which Machine.useTheBestKernel
/// sets). On a Zen 4, nl_i3d_r50's bfloat16 step took 12% less time than beside the own pool at
/// 2 x 8 x 112 and 6% less at 2 x 8 x 224, and a third less with two such steps sharing the
/// cores. libgomp's threads spin without yielding, though, which a float32 step sharing its
/// cores with another process pays up to 4x for: float32 keeps the own pool (docs/speed.md).
///
/// One caller at a time: a loop started from another thread while one runs (a data loader's
/// thread, say) gets `false` from `run` and runs serially on its own thread.
public enum OpenMP {
    /// Runs `body(i)` for every i in 0..<count on this thread and up to `threads - 1` of the
    /// team's, each taking the next item as it comes free; returns false, having run nothing, when
    /// another thread's loop holds the team.
    public static func run(_ count: Int, threads: Int, _ body: (Int) -> Void) -> Bool {
        guard inUse.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            return false
        }
        defer { inUse.store(false, ordering: .releasing) }
        withoutActuallyEscaping(body) { body in
            var job = Job(body: body, count: count)
            withUnsafeMutablePointer(to: &job) { job in
                library.parallel(
                    { raw in
                        let job = raw!.assumingMemoryBound(to: Job.self)
                        Parallel.runInside {
                            Parallel.takeItems(from: job.pointee.next, count: job.pointee.count, job.pointee.body)
                        }
                    }, job, UInt32(threads), 0)
            }
        }
        return true
    }

    /// The threads oneDNN's loops take (omp_set_num_threads), for the thread that calls it.
    public static func setThreadCount(_ count: Int) { library.setThreadCount(Int32(count)) }

    private struct Job: ~Copyable {
        let body: (Int) -> Void
        let count: Int
        let next = Atomic<Int>(0)
    }

    private static let inUse = Atomic<Bool>(false)

    /// libgomp's entry points, found by name: GOMP_parallel is what GCC compiles
    /// `#pragma omp parallel` to, stable since GCC 4.9.
    private struct Library {
        typealias Parallel =
            @convention(c) (
                @convention(c) (UnsafeMutableRawPointer?) -> Void, UnsafeMutableRawPointer?, UInt32, UInt32
            ) -> Void
        typealias SetThreadCount = @convention(c) (Int32) -> Void
        let parallel: Parallel
        let setThreadCount: SetThreadCount
    }

    private static let library: Library = {
        guard let handle = dlopen("libgomp.so.1", RTLD_NOW | RTLD_GLOBAL),
            let parallel = dlsym(handle, "GOMP_parallel"), let setThreads = dlsym(handle, "omp_set_num_threads")
        else {
            let reason = dlerror().map { String(cString: $0) } ?? "GOMP_parallel not found"
            fatalError("libgomp.so.1, GCC's OpenMP runtime, could not be loaded (\(reason)): install libgomp1")
        }
        return Library(
            parallel: unsafeBitCast(parallel, to: Library.Parallel.self),
            setThreadCount: unsafeBitCast(setThreads, to: Library.SetThreadCount.self))
    }()
}
