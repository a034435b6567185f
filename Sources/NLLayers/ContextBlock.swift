import NLTensor

/// GCNet's global context block (Cao et al., 2019) as mmcv's ContextBlock, in 3D:
///
///     context = sum_p softmax_p(conv_mask(x)) x_p      (attention pooling; or the mean of x_p)
///     out     = x * sigmoid(T_mul(context)) + T_add(context)
///
/// where each transform T is conv 1x1x1 (C -> C*ratio), LayerNorm, ReLU, conv 1x1x1 (-> C), its
/// last conv starting at zero, so a new block is the identity. A lighter alternative to the
/// non-local block: one attention map per sample instead of a P x P' one.
public final class ContextBlock: Layer {
    public enum Pooling: String, CaseIterable, Sendable { case attention = "att", average = "avg" }

    public let channels: Int
    public let planes: Int
    public let pooling: Pooling
    public let convMask: Conv3d?
    public let channelAdd: Transform?
    public let channelMul: Transform?

    private var input: Tensor?
    private var weights: Tensor?  // (N, P) attention over positions
    private var context: Tensor?  // (N, 1, 1, 1, C)
    private var gate: Tensor?  // (N, C) sigmoid(T_mul(context))

    /// `channelAdd` and `channelMul` are mmcv's fusion types "channel_add" and "channel_mul".
    public init(
        channels: Int, ratio: Double, pooling: Pooling = .attention, channelAdd: Bool = true, channelMul: Bool = false
    ) {
        precondition(channelAdd || channelMul, "ContextBlock needs channel_add, channel_mul or both")
        self.channels = channels
        planes = max(Int(Double(channels) * ratio), 1)
        self.pooling = pooling
        convMask =
            pooling == .attention
            ? Conv3d(inputChannels: channels, outputChannels: 1, kernelSize: Size3(1)) : nil
        self.channelAdd = channelAdd ? Transform(channels: channels, planes: planes) : nil
        self.channelMul = channelMul ? Transform(channels: channels, planes: planes) : nil
    }

    /// mmcv's initialisation: conv_mask Kaiming (fan in), each transform's first conv Kaiming
    /// (fan out, as the backbone's convolutions), its LayerNorm 1 and 0, its last conv zero.
    public func initialize(using generator: inout SeededGenerator) {
        if let convMask {
            convMask.weight.value.fillNormal(std: (2 / Float(channels)).squareRoot(), using: &generator)
            convMask.bias?.value.zero()
        }
        for transform in [channelAdd, channelMul].compactMap({ $0 }) {
            transform.expand.weight.value.fillNormal(std: (2 / Float(planes)).squareRoot(), using: &generator)
            transform.expand.bias?.value.zero()
            transform.norm.weight.value.fill(1)
            transform.norm.bias.value.zero()
            transform.project.weight.value.zero()
            transform.project.bias?.value.zero()
        }
    }

    public var children: [(name: String, layer: Layer)] {
        var list: [(name: String, layer: Layer)] = []
        if let convMask { list.append(("conv_mask", convMask)) }
        if let channelAdd { list.append(("channel_add_conv", channelAdd)) }
        if let channelMul { list.append(("channel_mul_conv", channelMul)) }
        return list
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.rank == 5 && x.channels == channels, "ContextBlock(\(channels)) got input \(x.shape)")
        input = Inference.kept(x)
        let n = x.shape[0], c = channels, p = x.rows / n
        let ctx = reuse(&context, shape: [n, 1, 1, 1, c])
        if let convMask {
            let w = reuse(&weights, shape: [n, p])
            w.copy(from: convMask.forward(x, training: training))
            softmaxRows(w.data, rows: n, columns: p)
            for s in 0..<n {  // context_s = w_s^T x_s
                GEMM.multiply(
                    m: 1, n: c, k: p, a: w.data + s * p, lda: p, b: x.data + s * p * c, ldb: c,
                    c: ctx.data + s * c, ldc: c)
            }
        } else {
            ctx.zero()
            for s in 0..<n {
                for i in 0..<p { for j in 0..<c { ctx.data[s * c + j] += x.data[(s * p + i) * c + j] } }
                for j in 0..<c { ctx.data[s * c + j] /= Float(p) }
            }
        }
        let out = Tensor(transient: x.shape)
        out.copy(from: x)
        if let channelMul {
            let m = reuse(&gate, shape: [n, c])
            let t = channelMul.forward(ctx, training: training)
            for i in 0..<(n * c) { m.data[i] = 1 / (1 + expf(-t.data[i])) }
            scaleRows(out, by: m, samples: n)
        }
        if let channelAdd {
            let t = channelAdd.forward(ctx, training: training)
            for s in 0..<n { addToEveryRow(out.slice(s..<(s + 1)), t.data + s * c) }
        }
        return out
    }

    public func backward(_ dOut: Tensor) -> Tensor {
        guard let x = input, let ctx = context else { preconditionFailure("ContextBlock.backward before forward") }
        let n = x.shape[0], c = channels, p = x.rows / n
        let dx = Tensor(transient: x.shape)
        dx.copy(from: dOut)
        let dCtx = Tensor(zeros: ctx.shape)
        if let channelAdd {  // d(add term) = sum over positions of dOut
            let dAdd = Tensor(zeros: [n, 1, 1, 1, c])
            for s in 0..<n { addColumnSums(of: dOut.slice(s..<(s + 1)), into: dAdd.data + s * c) }
            add(dCtx, channelAdd.backward(dAdd), into: dCtx)
        }
        if let channelMul, let m = gate {  // d(gate) = sum_p dOut * x; through the sigmoid
            let dGate = Tensor(zeros: [n, 1, 1, 1, c])
            for s in 0..<n {
                for i in 0..<p {
                    for j in 0..<c {
                        dGate.data[s * c + j] += dOut.data[(s * p + i) * c + j] * x.data[(s * p + i) * c + j]
                    }
                }
                for j in 0..<c { dGate.data[s * c + j] *= m.data[s * c + j] * (1 - m.data[s * c + j]) }
            }
            add(dCtx, channelMul.backward(dGate), into: dCtx)
            scaleRows(dx, by: m, samples: n)
        }
        if let convMask, let w = weights {
            // context_s = w_s^T x_s: x_s gets w_s dctx_s^T; w_s gets x_s dctx_s, then the softmax.
            let dMask = Tensor(zeros: [n, x.shape[1], x.shape[2], x.shape[3], 1])
            for s in 0..<n {
                let (ws, xs, dxs, ds) = (w.data + s * p, x.data + s * p * c, dx.data + s * p * c, dCtx.data + s * c)
                GEMM.multiply(m: p, n: c, k: 1, a: ws, lda: 1, b: ds, ldb: c, beta: 1, c: dxs, ldc: c)
                let dw = dMask.data + s * p
                GEMM.multiply(m: p, n: 1, k: c, a: xs, lda: c, b: ds, ldb: 1, c: dw, ldc: 1)
                var dot = 0.0
                for i in 0..<p { dot += Double(ws[i] * dw[i]) }
                for i in 0..<p { dw[i] = ws[i] * (dw[i] - Float(dot)) }
            }
            add(dx, convMask.backward(dMask), into: dx)
        } else {
            for s in 0..<n {
                for i in 0..<p { for j in 0..<c { dx.data[(s * p + i) * c + j] += dCtx.data[s * c + j] / Float(p) } }
            }
        }
        return dx
    }

    /// Multiplies every row of sample s by gates[s, :].
    private func scaleRows(_ t: Tensor, by gates: Tensor, samples n: Int) {
        let c = channels, p = t.rows / n
        for s in 0..<n {
            for i in 0..<p { for j in 0..<c { t.data[(s * p + i) * c + j] *= gates.data[s * c + j] } }
        }
    }

    /// conv 1x1x1 (C -> planes), LayerNorm, ReLU, conv 1x1x1 (planes -> C): mmcv's
    /// nn.Sequential, whose state_dict keys are "0.*", "1.*" and "3.*".
    public final class Transform: Layer {
        public let expand: Conv3d
        public let norm: LayerNorm
        public let activation = ReLU()
        public let project: Conv3d

        init(channels: Int, planes: Int) {
            expand = Conv3d(inputChannels: channels, outputChannels: planes, kernelSize: Size3(1))
            norm = LayerNorm(channels: planes, checkpointShape: [planes, 1, 1, 1])
            project = Conv3d(inputChannels: planes, outputChannels: channels, kernelSize: Size3(1))
        }

        public var children: [(name: String, layer: Layer)] { [("0", expand), ("1", norm), ("3", project)] }

        public func forward(_ x: Tensor, training: Bool) -> Tensor {
            let h = activation.forward(
                norm.forward(expand.forward(x, training: training), training: training), training: training)
            return project.forward(h, training: training)
        }

        public func backward(_ dy: Tensor) -> Tensor {
            expand.backward(norm.backward(activation.backward(project.backward(dy))))
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
