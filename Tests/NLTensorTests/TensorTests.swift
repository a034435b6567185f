import Foundation
import NLTensor
import Testing

struct TensorTests {
    @Test func permuteMovesAxesLikeTorch() {
        let t = Tensor(shape: [2, 3, 4], values: (0..<24).map(Float.init))
        let p = t.permuted([2, 0, 1])
        #expect(p.shape == [4, 2, 3])
        for i in 0..<2 {
            for j in 0..<3 {
                for k in 0..<4 {
                    #expect(p.data[(k * 2 + i) * 3 + j] == t.data[(i * 3 + j) * 4 + k])
                }
            }
        }
        let x = Tensor(shape: [2, 3, 2, 2, 5], values: (0..<120).map(Float.init))
        #expect(x.channelsLast().channelsFirst().array == x.array)
    }

    @Test func viewsShareStorage() {
        let t = Tensor(zeros: [4, 3])
        let view = t.reshaped([12]), rows = t.slice(1..<3)
        view.data[5] = 7
        #expect(t.data[5] == 7)
        #expect(rows.shape == [2, 3] && rows.data[2] == 7)
        rows.fill(1)
        #expect(t.array == [0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0])
    }

    @Test func storageIsAligned() {
        for n in [1, 3, 17, 1000] {
            #expect(Int(bitPattern: Tensor(zeros: [n]).data) % 64 == 0)
        }
    }
}

struct RandomTests {
    @Test func sameSeedSameStreamAndRestorableState() {
        var a = SeededGenerator(seed: 42), b = SeededGenerator(seed: 42)
        #expect((0..<10).map { _ in a.next() } == (0..<10).map { _ in b.next() })
        var c = SeededGenerator(words: a.words)
        #expect(a.next() == c.next())
        var stream1 = SeededGenerator(seed: 1, stream: 1), stream2 = SeededGenerator(seed: 1, stream: 2)
        #expect(stream1.next() != stream2.next())
    }

    @Test func normalDrawsHaveUnitVariance() {
        var g = SeededGenerator(seed: 3)
        let draws = (0..<100_000).map { _ in Double(g.normal()) }
        let mean = draws.reduce(0, +) / Double(draws.count)
        let variance = draws.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(draws.count)
        #expect(abs(mean) < 0.02 && abs(variance - 1) < 0.02)
        let uniforms = (0..<10_000).map { _ in g.uniform() }
        #expect(uniforms.allSatisfy { $0 >= 0 && $0 < 1 })
    }
}
