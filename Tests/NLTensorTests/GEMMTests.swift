import NLTensor
import NLTestSupport
import Testing

/// C = alpha op(A) op(B) + beta C, by three loops in Double.
func naiveGEMM(
    _ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: Tensor, _ lda: Int,
    _ b: Tensor, _ ldb: Int, _ beta: Float, _ c: Tensor, _ ldc: Int
) -> Tensor {
    let out = c.copy()
    for i in 0..<m {
        for j in 0..<n {
            var sum = 0.0
            for p in 0..<k {
                let av = ta ? a.data[p * lda + i] : a.data[i * lda + p]
                let bv = tb ? b.data[j * ldb + p] : b.data[p * ldb + j]
                sum += Double(av) * Double(bv)
            }
            out.data[i * ldc + j] = Float(Double(alpha) * sum + Double(beta) * Double(c.data[i * ldc + j]))
        }
    }
    return out
}

struct GEMMTests {
    /// Shapes that take each path: serial, split along M, along N, along K, and K = 0.
    @Test(arguments: [(3, 5, 7), (300, 20, 33), (16, 400, 40), (20, 24, 5000), (130, 140, 150), (4, 3, 0)])
    func matchesNaiveProductInEveryLayout(shape: (Int, Int, Int)) {
        var generator = SeededGenerator(seed: 1)
        expectEveryLayoutMatches(shape, alpha: 0.5, beta: 0.25, using: &generator)
    }

    /// A short K, beta 0 and a C larger than L2 (each thread's too): the product goes to OpenBLAS
    /// in row blocks, the last one partial, whatever C held before.
    @Test func shortProductsIntoALargeCInRowBlocks() {
        var generator = SeededGenerator(seed: 3)
        expectEveryLayoutMatches((4000, 300, 40), alpha: 1, beta: 0, using: &generator)
    }

    /// C = alpha op(A) op(B) + beta C in all four transpose layouts against `naiveGEMM`, with
    /// leading dimensions wider than the matrices, as row-shifted views use them. With beta 0, C
    /// holds NaN going in, which the product must overwrite.
    func expectEveryLayoutMatches(
        _ shape: (Int, Int, Int), alpha: Float, beta: Float, using generator: inout SeededGenerator
    ) {
        let (m, n, k) = shape
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1
            let a = randomTensor([max(ta ? k : m, 1) * lda], using: &generator)
            let b = randomTensor([max(tb ? n : k, 1) * ldb], using: &generator)
            let c = randomTensor([m * ldc], using: &generator)
            let expected = naiveGEMM(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            if beta == 0 { for i in 0..<m { for j in 0..<n { c.data[i * ldc + j] = .nan } } }
            GEMM.multiply(
                transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: alpha, a: a.data, lda: lda,
                b: b.data, ldb: ldb, beta: beta, c: c.data, ldc: ldc)
            #expect(relativeError(c, expected) < 1e-5, "\(m) x \(n) x \(k), transposes \(ta) \(tb)")
        }
    }

    @Test func splitResultsAreReproducible() {
        var generator = SeededGenerator(seed: 2)
        let a = randomTensor([4000 * 24], using: &generator), b = randomTensor([4000 * 24], using: &generator)
        let c1 = Tensor(zeros: [24 * 24]), c2 = Tensor(zeros: [24 * 24])
        for c in [c1, c2] {
            GEMM.multiply(
                transposeA: true, m: 24, n: 24, k: 4000, a: a.data, lda: 24, b: b.data, ldb: 24, c: c.data, ldc: 24)
        }
        #expect(c1.array == c2.array)
    }
}

/// The self-check's measure of a product: OpenBLAS's products, split over threads or not, in
/// every layout and with beta 0 or 1, come within float32 rounding of float64 (well under the
/// tolerance that calls a product wrong). A wrong one is caught end to end: SelfCheckTests.
struct GEMMCheckTests {
    @Test func rightProductsPass() {
        var generator = SeededGenerator(seed: 4)
        let (_, record) = GEMMCheck.measure {
            for (m, n, k) in [(300, 20, 33), (16, 400, 40), (64, 256, 6000), (4000, 300, 40), (7, 5, 3)] {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    let lda = (ta ? m : k) + 1, ldb = (tb ? k : n) + 2, ldc = n + 3
                    let a = randomTensor([(ta ? k : m) * lda], using: &generator),
                        b = randomTensor([(tb ? n : k) * ldb], using: &generator)
                    let c = randomTensor([m * ldc], using: &generator)
                    GEMM.multiply(
                        transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.5, a: a.data, lda: lda,
                        b: b.data, ldb: ldb, beta: k % 2 == 0 ? 0 : 1, c: c.data, ldc: ldc)
                }
            }
        }
        #expect(record.passed && record.calls >= 20 && record.entries > 0)
        #expect((record.worst?.error ?? 1) < 1e-6, "\(String(describing: record.worst))")
        #expect(GEMMCheck.tolerance >= 10 * (record.worst?.error ?? 1))
    }
}
