import NLLayers

// Straight-from-the-definition implementations in Double on channels-last tensors: slow and
// obviously right, for comparing the fast layers against over many shapes.

/// Element (s, t, h, w, c) of a (N, T, H, W, C) tensor.
func offset(_ shape: [Int], _ s: Int, _ t: Int, _ h: Int, _ w: Int, _ c: Int) -> Int {
    (((s * shape[1] + t) * shape[2] + h) * shape[3] + w) * shape[4] + c
}

struct NaiveConvolution {
    let conv: Conv3d

    /// Visits every (output element, kernel tap) pair whose input element is inside the input.
    func forEachProduct(_ inputShape: [Int], _ body: (_ out: Int, _ inOffset: Int, _ weightOffset: Int) -> Void) {
        let outShape = conv.outputShape(for: inputShape)
        let (k, st, p, cin, cout) = (
            conv.kernelSize, conv.stride, conv.padding, conv.inputChannels, conv.outputChannels
        )
        for s in 0..<outShape[0] {
            for to in 0..<outShape[1] {
                for ho in 0..<outShape[2] {
                    for wo in 0..<outShape[3] {
                        for kt in 0..<k.t {
                            for kh in 0..<k.h {
                                for kw in 0..<k.w {
                                    let (ti, hi, wi) = (
                                        to * st.t - p.t + kt, ho * st.h - p.h + kh, wo * st.w - p.w + kw
                                    )
                                    guard ti >= 0, ti < inputShape[1], hi >= 0, hi < inputShape[2], wi >= 0,
                                        wi < inputShape[3]
                                    else { continue }
                                    for co in 0..<cout {
                                        for ci in 0..<cin {
                                            body(
                                                offset(outShape, s, to, ho, wo, co),
                                                offset(inputShape, s, ti, hi, wi, ci),
                                                (((kt * k.h + kh) * k.w + kw) * cin + ci) * cout + co)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    func forward(_ x: Tensor) -> Tensor {
        let shape = conv.outputShape(for: x.shape)
        var y = [Double](repeating: 0, count: shape.reduce(1, *))
        let w = conv.weight.value.data
        forEachProduct(x.shape) { o, i, wi in y[o] += Double(x.data[i]) * Double(w[wi]) }
        if let b = conv.bias {
            for o in 0..<y.count { y[o] += Double(b.value.data[o % conv.outputChannels]) }
        }
        return Tensor(shape: shape, values: y.map(Float.init))
    }

    /// (dx, dW, db) for upstream gradient dy.
    func backward(_ x: Tensor, _ dy: Tensor) -> (Tensor, Tensor, Tensor) {
        var dx = [Double](repeating: 0, count: x.count)
        var dw = [Double](repeating: 0, count: conv.weight.value.count)
        let w = conv.weight.value.data
        forEachProduct(x.shape) { o, i, wi in
            dx[i] += Double(dy.data[o]) * Double(w[wi])
            dw[wi] += Double(dy.data[o]) * Double(x.data[i])
        }
        var db = [Double](repeating: 0, count: conv.outputChannels)
        for o in 0..<dy.count { db[o % conv.outputChannels] += Double(dy.data[o]) }
        return (
            Tensor(shape: x.shape, values: dx.map(Float.init)),
            Tensor(shape: conv.weight.value.shape, values: dw.map(Float.init)),
            Tensor(shape: [conv.outputChannels], values: db.map(Float.init))
        )
    }
}

/// Max pooling by its definition; ties to the first position in (t, h, w) order, as PyTorch.
func naiveMaxPool(_ pool: MaxPool3d, _ x: Tensor, _ dy: Tensor?) -> (y: Tensor, dx: Tensor) {
    let shape = pool.outputShape(for: x.shape)
    let y = Tensor(zeros: shape), dx = Tensor(zeros: x.shape)
    let (k, st, p) = (pool.kernelSize, pool.stride, pool.padding)
    for s in 0..<shape[0] {
        for to in 0..<shape[1] {
            for ho in 0..<shape[2] {
                for wo in 0..<shape[3] {
                    for c in 0..<shape[4] {
                        var best = -Float.infinity, at = -1
                        for kt in 0..<k.t {
                            for kh in 0..<k.h {
                                for kw in 0..<k.w {
                                    let (ti, hi, wi) = (
                                        to * st.t - p.t + kt, ho * st.h - p.h + kh, wo * st.w - p.w + kw
                                    )
                                    guard ti >= 0, ti < x.shape[1], hi >= 0, hi < x.shape[2], wi >= 0, wi < x.shape[3]
                                    else { continue }
                                    let i = offset(x.shape, s, ti, hi, wi, c)
                                    if at < 0 || x.data[i] > best { (best, at) = (x.data[i], i) }
                                }
                            }
                        }
                        let o = offset(shape, s, to, ho, wo, c)
                        y.data[o] = best
                        if let dy { dx.data[at] += dy.data[o] }
                    }
                }
            }
        }
    }
    return (y, dx)
}

/// BatchNorm by its formulas: (y, dx, dweight, dbias) with batch or running statistics.
func naiveBatchNorm(
    _ bn: BatchNorm3d, _ x: Tensor, _ dy: Tensor, batchStatistics: Bool
) -> (Tensor, Tensor, [Double], [Double]) {
    let c = bn.channels, rows = x.rows, n = Double(rows)
    let y = Tensor(zeros: x.shape), dx = Tensor(zeros: x.shape)
    var dw = [Double](repeating: 0, count: c), db = [Double](repeating: 0, count: c)
    for j in 0..<c {
        let column = (0..<rows).map { Double(x.data[$0 * c + j]) }
        let mean = batchStatistics ? column.reduce(0, +) / n : Double(bn.runningMean.data[j])
        let variance =
            batchStatistics
            ? column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / n : Double(bn.runningVariance.data[j])
        let s = 1 / (variance + Double(bn.epsilon)).squareRoot()
        let (w, b) = (Double(bn.weight.value.data[j]), Double(bn.bias.value.data[j]))
        let xhat = column.map { ($0 - mean) * s }
        let g = (0..<rows).map { Double(dy.data[$0 * c + j]) }
        db[j] = g.reduce(0, +)
        dw[j] = zip(g, xhat).map(*).reduce(0, +)
        for r in 0..<rows {
            y.data[r * c + j] = Float(xhat[r] * w + b)
            dx.data[r * c + j] = Float(
                batchStatistics ? w * s * (g[r] - db[j] / n - xhat[r] * dw[j] / n) : w * s * g[r])
        }
    }
    return (y, dx, dw, db)
}

/// The rows of a (N, T, H, W, C) tensor times a Cin x Cout weight plus bias: a 1x1x1 convolution.
func naivePointwise(_ x: Tensor, _ conv: Conv3d) -> Tensor { NaiveConvolution(conv: conv).forward(x) }

/// The non-local block's forward pass by its definition, for every pairwise function.
func naiveNonLocal(_ block: NonLocalBlock, _ x: Tensor, training: Bool) -> Tensor {
    let n = x.shape[0], p = x.rows / n
    let pool = MaxPool3d(kernelSize: Size3(1, 2, 2))
    func subsampled(_ t: Tensor) -> Tensor { block.subSample ? naiveMaxPool(pool, t, nil).y : t }
    let g = subsampled(naivePointwise(x, block.g))
    let theta = block.theta.map { naivePointwise(x, $0) } ?? x
    let phi = subsampled(block.phi.map { naivePointwise(x, $0) } ?? x)
    let pp = phi.rows / n, d = theta.channels, inner = block.innerChannels
    let y = Tensor(zeros: Array(x.shape.dropLast()) + [inner])
    for s in 0..<n {
        for i in 0..<p {
            var scores = [Double](repeating: 0, count: pp)
            for j in 0..<pp {
                if block.mode == .concatenation {
                    let w = block.concatProject!.weight.value.data
                    var v = 0.0
                    for c in 0..<inner {
                        v +=
                            Double(w[c]) * Double(theta.data[(s * p + i) * d + c]) + Double(w[inner + c])
                            * Double(phi.data[(s * pp + j) * d + c])
                    }
                    scores[j] = max(v, 0) / Double(pp)
                } else {
                    for c in 0..<d {
                        scores[j] += Double(theta.data[(s * p + i) * d + c]) * Double(phi.data[(s * pp + j) * d + c])
                    }
                }
            }
            switch block.mode {
            case .embeddedGaussian, .gaussian:
                let scale = block.mode == .embeddedGaussian && block.useScale ? 1 / Double(inner).squareRoot() : 1
                let top = scores.map { $0 * scale }.max()!
                let e = scores.map { exp($0 * scale - top) }
                let total = e.reduce(0, +)
                scores = e.map { $0 / total }
            case .dotProduct: scores = scores.map { $0 / Double(pp) }
            case .concatenation: break
            }
            for c in 0..<inner {
                var v = 0.0
                for j in 0..<pp { v += scores[j] * Double(g.data[(s * pp + j) * inner + c]) }
                y.data[(s * p + i) * inner + c] = Float(v)
            }
        }
    }
    let z = naivePointwise(y, block.convOut.conv)
    let bn = block.convOut.norm!
    let normalized = naiveBatchNorm(bn, z, Tensor(zeros: z.shape), batchStatistics: training && !bn.frozen).0
    return Tensor(shape: x.shape, values: zip(x.array, normalized.array).map(+))
}

/// GCNet's context block forward by its definition.
func naiveContext(_ block: ContextBlock, _ x: Tensor) -> Tensor {
    let n = x.shape[0], c = block.channels, p = x.rows / n
    func transform(_ t: ContextBlock.Transform, _ context: [Double]) -> [Double] {
        let (e, ln, pr) = (t.expand, t.norm, t.project)
        let planes = ln.channels
        var h = (0..<planes).map { o in
            (0..<c).reduce(Double(e.bias!.value.data[o])) {
                $0 + context[$1] * Double(e.weight.value.data[$1 * planes + o])
            }
        }
        let mean = h.reduce(0, +) / Double(planes)
        let variance = h.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(planes)
        h = h.enumerated().map { j, v in
            max(
                0,
                (v - mean) / (variance + Double(ln.epsilon)).squareRoot() * Double(ln.weight.value.data[j])
                    + Double(ln.bias.value.data[j]))
        }
        return (0..<c).map { o in
            (0..<planes).reduce(Double(pr.bias!.value.data[o])) {
                $0 + h[$1] * Double(pr.weight.value.data[$1 * c + o])
            }
        }
    }
    let out = x.copy()
    for s in 0..<n {
        var weights = [Double](repeating: 1 / Double(p), count: p)
        if let mask = block.convMask {
            let logits = (0..<p).map { i in
                (0..<c).reduce(Double(mask.bias!.value.data[0])) {
                    $0 + Double(x.data[(s * p + i) * c + $1]) * Double(mask.weight.value.data[$1])
                }
            }
            let e = logits.map { exp($0 - logits.max()!) }
            weights = e.map { $0 / e.reduce(0, +) }
        }
        let context = (0..<c).map { j in (0..<p).reduce(0.0) { $0 + weights[$1] * Double(x.data[(s * p + $1) * c + j]) }
        }
        let gate = block.channelMul.map { transform($0, context).map { 1 / (1 + exp(-$0)) } }
        let shift = block.channelAdd.map { transform($0, context) }
        for i in 0..<p {
            for j in 0..<c {
                var v = Double(x.data[(s * p + i) * c + j])
                if let gate { v *= gate[j] }
                if let shift { v += shift[j] }
                out.data[(s * p + i) * c + j] = Float(v)
            }
        }
    }
    return out
}

import Foundation
import NLTensor
