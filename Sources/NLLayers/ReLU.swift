import NLTensor

/// max(0, x), element-wise. Backward passes the gradient where the output is positive.
public final class ReLU: Layer {
    private var output: Tensor?

    public init() {}

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let y = Tensor(transient: x.shape)
        output = Inference.kept(y)  // backward's mask
        let (src, dst) = (x.data, y.data)
        forEachElementRange(x.count) { range in
            for i in range { dst[i] = max(src[i], 0) }
        }
        return y
    }

    /// max(0, a + b) in one pass: a residual block's sum and its ReLU, without the sum's buffer.
    public func forward(sum a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "ReLU(sum:) of \(a.shape) and \(b.shape)")
        let y = Tensor(transient: a.shape)
        output = Inference.kept(y)
        let (pa, pb, dst) = (a.data, b.data, y.data)
        forEachElementRange(a.count) { range in
            let vectors = range.lowerBound + range.count / 8 * 8
            for i in stride(from: range.lowerBound, to: vectors, by: 8) {
                let v = pa.load8(i) + pb.load8(i)
                dst.store8(v.replacing(with: 0, where: v .< 0), i)  // NaN stays NaN, as max(x, 0)
            }
            for i in vectors..<range.upperBound { dst[i] = max(pa[i] + pb[i], 0) }
        }
        return y
    }

    /// Takes `y`, a ReLU's output computed elsewhere (a BatchNorm's forward adding a residual),
    /// as its own: backward masks by it.
    public func keep(output y: Tensor) { output = Inference.kept(y) }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let y = output else { preconditionFailure("ReLU.backward before forward") }
        precondition(dy.shape == y.shape, "ReLU.backward got \(dy.shape), output was \(y.shape)")
        let dx = Tensor(transient: y.shape)
        let (out, g, d) = (y.data, dy.data, dx.data)
        forEachElementRange(y.count) { range in
            let vectors = range.lowerBound + range.count / 8 * 8
            for i in stride(from: range.lowerBound, to: vectors, by: 8) {
                d.store8(reluMasked(g.load8(i), where: out.load8(i)), i)
            }
            for i in vectors..<range.upperBound { d[i] = out[i] > 0 ? g[i] : 0 }
        }
        return dx
    }
}
