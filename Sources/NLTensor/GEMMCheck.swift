import Foundation
import Synchronization

/// Checks OpenBLAS's products while `GEMMCheck.measure` runs: each sgemm call, as GEMM.multiply
/// makes it after splitting over threads, is recomputed in float64 on the same operands, and its
/// error is taken relative to the size of its terms, |c - exact| / (|alpha| ||a_i|| ||b_j|| +
/// |beta c0|) (Cauchy-Schwarz bounds the float32 rounding of any summation order by about k x
/// 2^-24 of that). A product compared on its own operands
/// cannot be confused with a network whose rounding decided a ReLU the other way, which moves
/// whole-network gradients by up to 4e-2 in PyTorch's own float32 as well.
public enum GEMMCheck {
    /// An error above this is a wrong product, not rounding: float32 stays below 1e-6 (7e-7 at
    /// most over NL I3D's products on an AMD EPYC Zen 4, every kernel), and one row 1% off, as a
    /// kernel that mishandles its remainder rows, shows as 1e-3.
    public static let tolerance = 1e-5

    /// What the checked calls showed.
    public struct Record: Sendable {
        public var calls = 0
        /// Entries compared with their float64 value.
        public var entries = 0
        /// The largest error and the call it was in.
        public var worst: (error: Double, shape: GEMM.Meter.Shape)?
        /// Calls above `tolerance` (the first few) and how many in all.
        public var wrong: [(error: Double, shape: GEMM.Meter.Shape)] = []
        public var wrongCalls = 0

        public var passed: Bool { wrongCalls == 0 }

        public init() {}

        /// Adds what `other` found.
        public mutating func merge(_ other: Record) {
            calls += other.calls
            entries += other.entries
            if let w = other.worst, w.error > (worst?.error ?? -1) { worst = w }
            wrongCalls += other.wrongCalls
            wrong = Array((wrong + other.wrong).prefix(5))
        }
    }

    /// Runs `body` with every sgemm call checked, and what the checks found.
    public static func measure<T>(_ body: () throws -> T) rethrows -> (T, Record) {
        record.withLock { $0 = Record() }
        on.store(true, ordering: .relaxed)
        defer { on.store(false, ordering: .relaxed) }
        let result = try body()
        return (result, record.withLock { $0 })
    }

    static let on = Atomic<Bool>(false)
    static let record = Mutex(Record())

    /// A call being checked: the rows it compares, and for beta != 0 their values before the call.
    struct Pending {
        let rows: [Int]
        let before: [Float]
    }

    /// The rows of an m-row product that are compared: the first and last 16 (where kernels handle
    /// their remainders) and every s-th row between, at most about 512, so a wrong block of rows
    /// shows and the check costs a fraction of the product.
    static func rows(_ m: Int) -> [Int] {
        let stride = max(1, m / 512)
        return Array(
            Set(Array(0..<min(16, m)) + Array(max(0, m - 16)..<m) + Swift.stride(from: 0, to: m, by: stride).map { $0 })
        ).sorted()
    }

    static func begin(m: Int, n: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) -> Pending? {
        guard on.load(ordering: .relaxed) else { return nil }
        let rows = rows(m)
        var before: [Float] = []
        if beta != 0 { for i in rows { before.append(contentsOf: UnsafeBufferPointer(start: c + i * ldc, count: n)) } }
        return Pending(rows: rows, before: before)
    }

    static func finish(
        _ pending: Pending, _ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
        _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        // Column norms of op(B), once per call; then each compared row in float64.
        let bNorms = UnsafeMutablePointer<Double>.allocate(capacity: n),
            exact = UnsafeMutablePointer<Double>.allocate(capacity: n)
        let aRow = UnsafeMutablePointer<Double>.allocate(capacity: k)
        defer { bNorms.deallocate(); exact.deallocate(); aRow.deallocate() }
        bNorms.initialize(repeating: 0, count: n)
        if transposeB {
            for j in 0..<n { bNorms[j] = sumOfSquares(b + j * ldb, k) }
        } else {
            for p in 0..<k { let row = b + p * ldb; for j in 0..<n { let v = Double(row[j]); bNorms[j] += v * v } }
        }
        for j in 0..<n { bNorms[j] = bNorms[j].squareRoot() }
        var worst = 0.0
        for (r, i) in pending.rows.enumerated() {
            var aNorm = 0.0
            for p in 0..<k { let v = Double(transposeA ? a[p * lda + i] : a[i * lda + p]); aRow[p] = v; aNorm += v * v }
            aNorm = aNorm.squareRoot()
            if transposeB {
                for j in 0..<n { exact[j] = dot(aRow, b + j * ldb, k) }
            } else {
                exact.update(repeating: 0, count: n)
                for p in 0..<k where aRow[p] != 0 {
                    let row = b + p * ldb, scale = aRow[p]
                    for j in 0..<n { exact[j] += scale * Double(row[j]) }
                }
            }
            for j in 0..<n {
                let c0 = beta == 0 ? 0 : Double(beta) * Double(pending.before[r * n + j])
                let want = Double(alpha) * exact[j] + c0
                let size = abs(Double(alpha)) * aNorm * bNorms[j] + abs(c0)
                let got = Double(c[i * ldc + j])
                let error =
                    got == want ? 0 : (got.isFinite ? abs(got - want) / max(size, .leastNormalMagnitude) : .infinity)
                worst = max(worst, error)
            }
        }
        record(
            worst: worst, entries: pending.rows.count * n,
            shape: GEMM.Meter.Shape(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k))
    }

    /// Σ x[p] y[p] in float64, eight lanes at a time.
    static func dot(_ x: UnsafePointer<Double>, _ y: UnsafePointer<Float>, _ k: Int) -> Double {
        var lanes = SIMD8<Double>(), p = 0
        while p + 8 <= k {
            lanes +=
                UnsafeRawPointer(x + p).loadUnaligned(as: SIMD8<Double>.self)
                * widened(UnsafeMutablePointer(mutating: y).load8(p))
            p += 8
        }
        var sum = lanes.sum()
        while p < k { sum += x[p] * Double(y[p]); p += 1 }
        return sum
    }

    static func sumOfSquares(_ y: UnsafePointer<Float>, _ k: Int) -> Double {
        var lanes = SIMD8<Double>(), p = 0
        while p + 8 <= k { let v = widened(UnsafeMutablePointer(mutating: y).load8(p)); lanes += v * v; p += 8 }
        var sum = lanes.sum()
        while p < k { sum += Double(y[p]) * Double(y[p]); p += 1 }
        return sum
    }

    static func record(worst: Double, entries: Int, shape: GEMM.Meter.Shape) {
        record.withLock { record in
            record.calls += 1
            record.entries += entries
            if worst > (record.worst?.error ?? -1) { record.worst = (worst, shape) }
            if worst > tolerance {
                record.wrongCalls += 1
                if record.wrong.count < 5 { record.wrong.append((worst, shape)) }
            }
        }
    }
}

extension GEMMCheck {
    /// `NL_SIMULATE_WRONG_SGEMM=CORE:THREADS` makes every product wrong in its last row (1% off,
    /// as a kernel that mishandles its remainder rows would be) while OpenBLAS runs on CORE (`*`:
    /// any) with at least THREADS threads: how the tests show that the self-check catches such a
    /// kernel and that the commands then fall back. Unset, it costs one comparison per call.
    static let simulatedFault: (core: String, threads: Int)? = {
        guard let setting = ProcessInfo.processInfo.environment["NL_SIMULATE_WRONG_SGEMM"] else { return nil }
        let parts = setting.split(separator: ":")
        guard parts.count == 2, let threads = Int(parts[1]) else { return nil }
        return (parts[0].lowercased(), threads)
    }()

    static func simulateWrongKernel(m: Int, n: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard let fault = simulatedFault, Parallel.threadCount >= fault.threads,
            fault.core == "*" || BLASKernel.current.lowercased() == fault.core
        else { return }
        for j in 0..<n { c[(m - 1) * ldc + j] *= 1.01 }
    }
}
