import COpenBLAS
import Dispatch
import Synchronization

/// Row-major single-precision matrix multiply through OpenBLAS's `cblas_sgemm`, split across the
/// project's threads (OpenBLAS itself runs single-threaded, see `Parallel`).
public enum GEMM {
    /// C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C, where op(X) is X or its transpose.
    /// Leading dimensions are the row strides of A, B and C as stored (before any transpose).
    ///
    /// The work is split over threads along K into private accumulators, summed in a fixed order
    /// so results are reproducible for a given thread count, when K is the long side (weight
    /// gradients: K = N*T*H*W rows): each thread then packs half of both matrices, where a split
    /// along M or N has both pack all of the other one (1.4x faster for layer1's: 64 x 256 x 12544
    /// at 68 GFLOP/s a thread against 48 split along N). Otherwise it is split along M (rows of
    /// C) when M is large, else along N.
    public static func multiply(
        transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        let threads = Parallel.isInsideLoop ? 1 : Parallel.threadCount
        let minimumSplit = 64 * threads
        if threads == 1 || m * n * k < 1 << 18 || (m < minimumSplit && n < minimumSplit && k < 4 * minimumSplit) {
            sgemm(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        } else if k >= 4 * max(m, n, minimumSplit) {
            multiplySplittingK(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        } else if m >= minimumSplit {
            Parallel.forRanges(m, minimumChunk: 32) { _, rows in
                let aRows = transposeA ? a + rows.lowerBound : a + rows.lowerBound * lda
                sgemm(
                    transposeA, transposeB, rows.count, n, k, alpha, aRows, lda, b, ldb, beta,
                    c + rows.lowerBound * ldc, ldc)
            }
        } else if n >= minimumSplit {
            Parallel.forRanges(n, minimumChunk: 32) { _, columns in
                let bColumns = transposeB ? b + columns.lowerBound * ldb : b + columns.lowerBound
                sgemm(
                    transposeA, transposeB, m, columns.count, k, alpha, a, lda, bColumns, ldb, beta,
                    c + columns.lowerBound, ldc)
            }
        } else {
            multiplySplittingK(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        }
    }

    /// Each thread multiplies a slice of K into its own M x N accumulator; the slices are then
    /// added to C in slice order, rows split over the threads.
    private static func multiplySplittingK(
        _ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
        _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        let slices = Parallel.split(k, minimumChunk: 64)
        let partials = Tensor(transient: [slices.count, m, n])  // each slice overwritten (beta 0) below
        Parallel.forEach(slices.count) { s in
            let depth = slices[s]
            let aSlice = transposeA ? a + depth.lowerBound * lda : a + depth.lowerBound
            let bSlice = transposeB ? b + depth.lowerBound : b + depth.lowerBound * ldb
            sgemm(
                transposeA, transposeB, m, n, depth.count, alpha, aSlice, lda, bSlice, ldb, 0,
                partials.data + s * m * n, n)
        }
        Parallel.forRanges(m) { _, rows in
            for i in rows {
                let row = c + i * ldc
                for j in 0..<n { row[j] = beta == 0 ? 0 : beta * row[j] }
                for s in 0..<slices.count {
                    let partial = partials.data + (s * m + i) * n
                    for j in 0..<n { row[j] += partial[j] }
                }
            }
        }
    }

    /// What OpenBLAS's sgemm did between `Meter.start()` and `Meter.stop()`, over every thread: its
    /// calls and the seconds threads spent in them, by shape. Counted only while `Meter.on` (over
    /// nlbench step's timed steps).
    public enum Meter {
        /// A call's shape as GEMM.multiply passes it to OpenBLAS, after any split over threads.
        public struct Shape: Hashable, Sendable, CustomStringConvertible {
            public let transposeA, transposeB: Bool
            public let m, n, k: Int
            public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
            public var description: String { "\(transposeA ? "T" : "N")\(transposeB ? "T" : "N") \(m) x \(n) x \(k)" }
        }

        public struct Record: Sendable {
            /// Per shape: its calls and the seconds threads spent in them.
            public let shapes: [Shape: (calls: Int, threadSeconds: Double)]
            public var flops: Double { shapes.reduce(0) { $0 + $1.key.flops * Double($1.value.calls) } }
            public var threadSeconds: Double { shapes.values.reduce(0) { $0 + $1.threadSeconds } }

            /// One of `steps` equal steps' share.
            public func perStep(of steps: Int) -> Record {
                Record(shapes: shapes.mapValues { ($0.calls / steps, $0.threadSeconds / Double(steps)) })
            }
        }

        static let on = Atomic<Bool>(false)
        static let byShape = Mutex<[Shape: (calls: Int, nanoseconds: Int)]>([:])

        public static func start() { byShape.withLock { $0 = [:] }; on.store(true, ordering: .relaxed) }
        public static func stop() -> Record {
            on.store(false, ordering: .relaxed)
            return Record(
                shapes: byShape.withLock { $0 }.mapValues {
                    (calls: $0.calls, threadSeconds: Double($0.nanoseconds) / 1e9)
                })
        }

        static func count(_ shape: Shape, nanoseconds: Int) {
            byShape.withLock {
                $0[shape, default: (0, 0)].calls += 1; $0[shape, default: (0, 0)].nanoseconds += nanoseconds
            }
        }
    }

    private static func sgemm(
        _ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
        _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        if k == 0 {  // BLAS would leave C untouched; the product of empty matrices is zero.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        let counting = Meter.on.load(ordering: .relaxed)
        let start = counting ? DispatchTime.now().uptimeNanoseconds : 0
        let check = GEMMCheck.begin(m: m, n: n, beta: beta, c: c, ldc: ldc)
        // With beta 0 OpenBLAS first zeroes all of C, then its kernel reads C back. For a C larger
        // than L2 and a short K that round trip through memory costs as much as the products, so
        // such calls go in row blocks whose C stays in L2 between the two. Measured on the AMD
        // EPYC with two threads on cold data, 6272 x 256 x 64: 22-36 GFLOP/s a thread in one
        // call, 45-51 in blocks of 512 rows; K of 128 and more, or C of 1.6 MB, gain nothing.
        let rowsPerCall = beta == 0 && k <= 64 && m * n > 1 << 19 ? max(16, (1 << 17) / n) : m
        for r in Swift.stride(from: 0, to: m, by: rowsPerCall) {
            cblas_sgemm(
                CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                Int32(min(rowsPerCall, m - r)), Int32(n), Int32(k), alpha, transposeA ? a + r : a + r * lda, Int32(lda),
                b, Int32(ldb), beta, c + r * ldc, Int32(ldc))
        }
        GEMMCheck.simulateWrongKernel(m: m, n: n, c: c, ldc: ldc)
        if let check { GEMMCheck.finish(check, transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) }
        if counting {
            Meter.count(
                Meter.Shape(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k),
                nanoseconds: Int(DispatchTime.now().uptimeNanoseconds - start))
        }
    }
}
