import NLTensor

/// The non-local block of Wang et al. (CVPR 2018) as mmcv's NonLocal3d builds it:
///
///     z = x + BN(conv_out(f(theta(x), phi(x)) g(x)))
///
/// with theta, phi and g 1x1x1 convolutions to C/2 channels (phi and g followed by a 1x2x2 max
/// pool when sub-sampling) and the pairwise function f one of:
/// - embedded_gaussian: softmax(theta phi^T), optionally scaled by 1/sqrt(C/2) first;
/// - gaussian: softmax(x x'^T) on the input itself (no theta, no phi convolution);
/// - dot_product: theta phi^T / P' (P' positions of phi);
/// - concatenation: ReLU(w . [theta_i, phi_j]) / P'.
/// conv_out has no bias; its BatchNorm's weight and bias start at zero, so a new block is the
/// identity. Per sample, the attention matrix is P x P' (P = T*H*W positions).
public final class NonLocalBlock: Layer {
    public enum Mode: String, CaseIterable, Sendable {
        case embeddedGaussian = "embedded_gaussian"
        case gaussian
        case dotProduct = "dot_product"
        case concatenation
    }

    public let channels: Int
    public let innerChannels: Int
    public let mode: Mode
    public let useScale: Bool
    public let subSample: Bool

    public let g: Conv3d
    public let theta: Conv3d?
    public let phi: Conv3d?
    /// concatenation's projection of [theta_i, phi_j] to one value: a 1x1x1 convolution from
    /// 2 * C/2 channels to 1 without bias in the reference, of which only the weight is used.
    public let concatProject: Conv3d?
    public let convOut: ConvModule
    private let gPool: MaxPool3d?
    private let phiPool: MaxPool3d?

    /// How the pairwise products (theta phi^T and the attention's products, forward and
    /// backward) compute: float32, or bfloat16 inputs by oneDNN (or their emulation) in bf16
    /// precision. The concatenation mode's projections stay float32 (matrix-vector products).
    public var products = ConvolutionAlgorithm.own
    private lazy var bfloat16Products = BFloat16Products()

    // What forward keeps for backward.
    private var input: Tensor?
    private var thetaOut: Tensor?  // (N, P, d): theta(x), or x itself for gaussian
    private var phiOut: Tensor?  // (N, P', d)
    private var gOut: Tensor?  // (N, P', C/2)
    private var attention: Tensor?  // (N, P, P')
    private var concatTheta: Tensor?  // (N, P): w1 . theta_i, for concatenation
    private var concatPhi: Tensor?  // (N, P'): w2 . phi_j
    private var attended: Tensor?  // (N, T, H, W, C/2): attention * g
    /// theta, phi, g and the attention rounded to bfloat16 (where the products compute in it),
    /// kept for backward's products.
    private var rounded: (theta: BFloat16Tensor, phi: BFloat16Tensor, g: BFloat16Tensor, attention: BFloat16Tensor)?

    public init(channels: Int, mode: Mode = .embeddedGaussian, useScale: Bool = false, subSample: Bool = true) {
        self.channels = channels
        innerChannels = max(channels / 2, 1)
        self.mode = mode
        self.useScale = useScale
        self.subSample = subSample
        let inner = innerChannels
        func pointwise(_ cin: Int, _ cout: Int) -> Conv3d {
            Conv3d(inputChannels: cin, outputChannels: cout, kernelSize: Size3(1))
        }
        g = pointwise(channels, inner)
        theta = mode == .gaussian ? nil : pointwise(channels, inner)
        phi = mode == .gaussian ? nil : pointwise(channels, inner)
        concatProject =
            mode == .concatenation
            ? Conv3d(inputChannels: 2 * inner, outputChannels: 1, kernelSize: Size3(1), bias: false) : nil
        convOut = ConvModule(inputChannels: inner, outputChannels: channels, kernelSize: Size3(1), activated: false)
        gPool = subSample ? MaxPool3d(kernelSize: Size3(1, 2, 2)) : nil
        phiPool = subSample ? MaxPool3d(kernelSize: Size3(1, 2, 2)) : nil
        convOut.norm!.weight.value.zero()
        convOut.norm!.bias.value.zero()
    }

    /// The reference's initialisation: every convolution weight normal with std 0.01, biases
    /// zero, the output BatchNorm's weight and bias zero.
    public func initialize(using generator: inout SeededGenerator) {
        for conv in [g, theta, phi, convOut.conv].compactMap({ $0 }) {
            conv.weight.value.fillNormal(std: 0.01, using: &generator)
            conv.bias?.value.zero()
        }
        concatProject?.weight.value.fillNormal(std: 0.01, using: &generator)
        convOut.norm!.weight.value.zero()
        convOut.norm!.bias.value.zero()
    }

    /// In the reference's registration order, so the state_dict lists keys as PyTorch does.
    public var children: [(name: String, layer: Layer)] {
        // With sub-sampling the reference wraps g and phi in nn.Sequential(conv, pool): "g.0.conv".
        let wrapped = subSample ? ".0" : ""
        var list: [(name: String, layer: Layer)] = [("g\(wrapped).conv", g), ("conv_out", convOut)]
        if let theta { list.append(("theta.conv", theta)) }
        if let phi { list.append(("phi\(wrapped).conv", phi)) }
        if let concatProject { list.append(("concat_project.conv", concatProject)) }
        return list
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.rank == 5 && x.channels == channels, "NonLocalBlock(\(channels)) got input \(x.shape)")
        input = Inference.kept(x)
        let n = x.shape[0], p = x.rows / n, inner = innerChannels
        let gFull = g.forward(x, training: training)
        let gx = gPool?.forward(gFull, training: training) ?? gFull
        let th: Tensor, ph: Tensor
        if let theta, let phi {
            th = theta.forward(x, training: training)
            let phFull = phi.forward(x, training: training)
            ph = phiPool?.forward(phFull, training: training) ?? phFull
        } else {
            th = x
            ph = phiPool?.forward(x, training: training) ?? x
        }
        let pp = ph.rows / n, d = th.channels
        (thetaOut, phiOut, gOut) = (Inference.kept(th), Inference.kept(ph), Inference.kept(gx))
        let a = reuse(&attention, shape: [n, p, pp])
        let y = reuse(&attended, shape: Array(x.shape.dropLast()) + [inner])
        let rounds = products != .own
        let thR = rounds ? BFloat16Tensor(rounding: th) : nil, phR = rounds ? BFloat16Tensor(rounding: ph) : nil
        let gR = rounds ? BFloat16Tensor(rounding: gx) : nil, aR = rounds ? BFloat16Tensor(transient: a.shape) : nil
        let (thO, phO, gO, aO) = (Operand(th, thR), Operand(ph, phR), Operand(gx, gR), Operand(a, aR))
        if mode == .concatenation { projectConcatenation(th, ph, n: n, p: p, pp: pp) }
        for s in 0..<n {
            let aS = a.data + s * p * pp
            switch mode {
            case .embeddedGaussian, .gaussian, .dotProduct:
                multiply(
                    transposeB: true, m: p, n: pp, k: d, alpha: pairwiseScale(pp),
                    a: thO.at(s * p * d), lda: d, b: phO.at(s * pp * d), ldb: d, c: aS, ldc: pp)
                if mode != .dotProduct { softmaxRows(aS, rows: p, columns: pp) }
            case .concatenation:
                let (ct, cp, scale) = (concatTheta!.data + s * p, concatPhi!.data + s * pp, 1 / Float(pp))
                Parallel.forRanges(p) { _, rows in
                    for i in rows { for j in 0..<pp { aS[i * pp + j] = max(ct[i] + cp[j], 0) * scale } }
                }
            }
            if let aR { roundToBFloat16(aS, count: p * pp, into: aR.bits + s * p * pp) }
            multiply(
                m: p, n: inner, k: pp, a: aO.at(s * p * pp), lda: pp, b: gO.at(s * pp * inner), ldb: inner,
                c: y.data + s * p * inner, ldc: inner)
        }
        rounded = nil
        if let thR, let phR, let gR, let aR { rounded = Inference.kept(aR.storage).map { _ in (thR, phR, gR, aR) } }
        let z = convOut.forward(y, training: training)
        let out = Tensor(transient: x.shape)
        add(x, z, into: out)
        return out
    }

    /// An operand of the pairwise products: its float32 values and, where the products compute
    /// in bfloat16, its rounding, made once for all the products that read it.
    private struct Operand {
        let values: UnsafeMutablePointer<Float>
        let rounded: UnsafeMutablePointer<UInt16>?

        init(_ values: Tensor, _ rounded: BFloat16Tensor?) {
            (self.values, self.rounded) = (values.data, rounded?.bits)
        }
        private init(values: UnsafeMutablePointer<Float>, rounded: UnsafeMutablePointer<UInt16>?) {
            (self.values, self.rounded) = (values, rounded)
        }

        /// The operand from element `i` on (one sample's).
        func at(_ i: Int) -> Operand { Operand(values: values + i, rounded: rounded.map { $0 + i }) }
    }

    /// C = alpha op(A) op(B) (beta 0) in the block's `products` arithmetic.
    private func multiply(
        transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: Operand, lda: Int, b: Operand, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        switch products {
        case .own:
            GEMM.multiply(
                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a.values, lda: lda,
                b: b.values, ldb: ldb, c: c, ldc: ldc)
        case .bfloat16:
            bfloat16Products.multiply(
                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a.rounded!,
                lda: lda, b: b.rounded!, ldb: ldb, c: c, ldc: ldc)
        case .emulatedBFloat16:
            BFloat16Products.emulate(
                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a.rounded!,
                lda: lda, b: b.rounded!, ldb: ldb, c: c, ldc: ldc)
        }
    }

    /// The factor theta phi^T is multiplied by before softmax (or, for dot_product, instead of it).
    private func pairwiseScale(_ pp: Int) -> Float {
        switch mode {
        case .embeddedGaussian: useScale ? 1 / Float(innerChannels).squareRoot() : 1
        case .dotProduct: 1 / Float(pp)
        case .gaussian, .concatenation: 1
        }
    }

    /// concatenation: w . [theta_i, phi_j] = w1 . theta_i + w2 . phi_j, so the two halves of the
    /// projection are computed once per position.
    private func projectConcatenation(_ th: Tensor, _ ph: Tensor, n: Int, p: Int, pp: Int) {
        let (inner, w) = (innerChannels, concatProject!.weight.value.data)
        let ct = reuse(&concatTheta, shape: [n, p]), cp = reuse(&concatPhi, shape: [n, pp])
        GEMM.multiply(m: n * p, n: 1, k: inner, a: th.data, lda: inner, b: w, ldb: 1, c: ct.data, ldc: 1)
        GEMM.multiply(m: n * pp, n: 1, k: inner, a: ph.data, lda: inner, b: w + inner, ldb: 1, c: cp.data, ldc: 1)
    }

    public func backward(_ dOut: Tensor) -> Tensor {
        guard let x = input, let th = thetaOut, let ph = phiOut, let gx = gOut, let a = attention else {
            preconditionFailure("NonLocalBlock.backward before forward")
        }
        let n = x.shape[0], p = x.rows / n, pp = ph.rows / n, d = th.channels, inner = innerChannels
        let dy = convOut.backward(dOut)  // (N, T, H, W, C/2)
        let dA = Tensor(transient: [p, pp])  // one sample's at a time
        let dTh = Tensor(transient: th.shape), dPh = Tensor(transient: ph.shape)
        let dG = Tensor(transient: gx.shape)
        let rounds = products != .own
        precondition(!rounds || rounded != nil, "NonLocalBlock.backward in bfloat16 after a forward in float32")
        let dyR = rounds ? BFloat16Tensor(rounding: dy) : nil, dSR = rounds ? BFloat16Tensor(transient: dA.shape) : nil
        let (thO, phO, gO, aO) = (
            Operand(th, rounded?.theta), Operand(ph, rounded?.phi), Operand(gx, rounded?.g),
            Operand(a, rounded?.attention)
        )
        let (dyO, dSO) = (Operand(dy, dyR), Operand(dA, dSR))
        for s in 0..<n {
            let aS = a.data + s * p * pp
            // dA = dY g^T, dg = A^T dY
            multiply(
                transposeB: true, m: p, n: pp, k: inner, a: dyO.at(s * p * inner), lda: inner,
                b: gO.at(s * pp * inner), ldb: inner, c: dA.data, ldc: pp)
            multiply(
                transposeA: true, m: pp, n: inner, k: p, a: aO.at(s * p * pp), lda: pp, b: dyO.at(s * p * inner),
                ldb: inner, c: dG.data + s * pp * inner, ldc: inner)
            let thS = th.data + s * p * d, phS = ph.data + s * pp * d
            let dThS = dTh.data + s * p * d, dPhS = dPh.data + s * pp * d
            if mode == .concatenation {
                backwardConcatenation(sample: s, dA: dA.data, p: p, pp: pp, thS, phS, dThS, dPhS)
                continue
            }
            // Through the softmax, dA becomes dS = A * (dA - rowsum(A * dA)); dot_product has none.
            // The scale applied to the scores in forward is applied to dTheta and dPhi below.
            if mode != .dotProduct {
                Parallel.forRanges(p) { _, rows in
                    for i in rows {
                        let (ai, gi) = (aS + i * pp, dA.data + i * pp)
                        var dot = 0.0
                        for j in 0..<pp { dot += Double(ai[j] * gi[j]) }
                        let dotF = Float(dot)
                        for j in 0..<pp { gi[j] = ai[j] * (gi[j] - dotF) }
                    }
                }
            }
            if let dSR { roundToBFloat16(dA.data, count: p * pp, into: dSR.bits) }
            let scale = pairwiseScale(pp)
            multiply(
                m: p, n: d, k: pp, alpha: scale, a: dSO, lda: pp, b: phO.at(s * pp * d), ldb: d, c: dThS, ldc: d)
            multiply(
                transposeA: true, m: pp, n: d, k: p, alpha: scale, a: dSO, lda: pp, b: thO.at(s * p * d), ldb: d,
                c: dPhS, ldc: d)
        }
        let dx = Tensor(transient: x.shape)
        dx.copy(from: dOut)  // the residual path
        _ = g.backward(gPool?.backward(dG) ?? dG, addingInputGradientTo: dx)
        if let theta, let phi {
            _ = theta.backward(dTh, addingInputGradientTo: dx)
            _ = phi.backward(phiPool?.backward(dPh) ?? dPh, addingInputGradientTo: dx)
        } else {
            add(dx, dTh, into: dx)
            add(dx, phiPool?.backward(dPh) ?? dPh, into: dx)
        }
        return dx
    }

    /// concatenation's backward for one sample: with s_ij = w1 . theta_i + w2 . phi_j and
    /// A_ij = ReLU(s_ij) / P', dS_ij = dA_ij / P' where s_ij > 0; theta_i gets (sum_j dS_ij) w1,
    /// phi_j gets (sum_i dS_ij) w2, and w1, w2 the matching sums over positions.
    private func backwardConcatenation(
        sample s: Int, dA: UnsafeMutablePointer<Float>, p: Int, pp: Int,
        _ thS: UnsafeMutablePointer<Float>, _ phS: UnsafeMutablePointer<Float>,
        _ dThS: UnsafeMutablePointer<Float>, _ dPhS: UnsafeMutablePointer<Float>
    ) {
        let (inner, w, project) = (innerChannels, concatProject!.weight.value.data, concatProject!.weight)
        let (ct, cp, scale) = (concatTheta!.data + s * p, concatPhi!.data + s * pp, 1 / Float(pp))
        var rowSums = [Float](repeating: 0, count: p), columnSums = [Double](repeating: 0, count: pp)
        for i in 0..<p {
            var sum = 0.0
            for j in 0..<pp where ct[i] + cp[j] > 0 {
                let v = dA[i * pp + j] * scale
                sum += Double(v)
                columnSums[j] += Double(v)
            }
            rowSums[i] = Float(sum)
        }
        for i in 0..<p { for c in 0..<inner { dThS[i * inner + c] = rowSums[i] * w[c] } }
        for j in 0..<pp { for c in 0..<inner { dPhS[j * inner + c] = Float(columnSums[j]) * w[inner + c] } }
        guard project.requiresGradient else { return }
        for c in 0..<inner {
            var g1 = 0.0, g2 = 0.0
            for i in 0..<p { g1 += Double(rowSums[i] * thS[i * inner + c]) }
            for j in 0..<pp { g2 += columnSums[j] * Double(phS[j * inner + c]) }
            project.gradient.data[c] += Float(g1)
            project.gradient.data[inner + c] += Float(g2)
        }
    }
}
