import NLLayers
import NLTensor
import Testing

struct ParameterTests {
    /// zeroGradient makes the gradient zeros without a pass over it (zero_grad(set_to_none=True)):
    /// the first reader gets zeros, even many threads at once inside a parallel loop, none of
    /// whose additions is lost to a late zeroing; a backward that writes whole gradients is told,
    /// once, that it writes instead of adding.
    @Test func zeroGradientGivesZerosOnFirstUse() {
        let p = Parameter(shape: [1 << 16], kind: .weight)
        p.gradient.fill(3)
        p.zeroGradient()
        Parallel.forEach(p.gradient.count) { i in p.gradient.data[i] += Float(i) }
        #expect(Array(p.gradient.buffer) == (0..<p.gradient.count).map(Float.init))
        p.zeroGradient()
        let (gradient, isZero) = p.gradientToWrite()
        #expect(isZero)
        #expect(gradient.data[5] == 5, "not zeroed: the writer writes every element")
        #expect(!p.gradientToWrite().isZero)
        #expect(p.gradient.data[5] == 5)
    }
}
