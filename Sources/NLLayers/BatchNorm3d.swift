import NLTensor

/// Batch normalisation over every axis but the channels, as `torch.nn.BatchNorm3d`.
///
/// - training: batch statistics (biased variance to normalise), and running statistics updated
///   with `momentum` and the unbiased variance;
/// - inference, or `frozen` (mmaction2's norm_eval): running statistics, nothing updated.
///
/// With `fusedReLU` it is BatchNorm3d then ReLU in one pass over the data and one buffer: the
/// ReLU is applied as the output is written, and backward masks the incoming gradient where the
/// output is zero, which it recomputes from the input it reads anyway (ConvModule's conv-BN-ReLU
/// keeps two activations, not three, and its backward reads two, not three).
public final class BatchNorm3d: Layer {
    public let channels: Int
    public let epsilon: Float
    /// Weight of each new batch in the running statistics (precise BN changes it).
    public var momentum: Float
    public let weight: Parameter
    public let bias: Parameter
    public let runningMean: Tensor
    public let runningVariance: Tensor
    public let batchesTracked = Counter()
    /// Use running statistics even while training, and leave them alone.
    public var frozen = false
    /// Apply a ReLU to the output (see the type's comment).
    public let fusedReLU: Bool
    /// Synchronised BatchNorm (a data-parallel job's sync_bn): adds each per-channel sum up over
    /// every process, in place, so the batch statistics and their gradients are the global
    /// batch's. nil: this process's batch alone.
    public var synchronize: ((inout [Double]) -> Void)?

    /// The input forward normalised, for backward: float32, or bfloat16 from a convolution in
    /// mixed precision.
    private enum Input {
        case float32(Tensor)
        case bfloat16(BFloat16Tensor)
    }
    private var input: Input?
    // The statistics the last forward normalised with, and whether they were the batch's.
    private let mean: Tensor
    private let inverseStd: Tensor
    private var usedBatchStatistics = false
    // Per-channel coefficients of forward (scale, shift: backward's fused ReLU recomputes the
    // output from them) and backward (gain, mean(dy), mean(dy * xhat)): allocated once, so a
    // step allocates nothing after the first.
    private let coefficients: [Tensor]

    public init(channels: Int, epsilon: Float = 1e-5, momentum: Float = 0.1, fusedReLU: Bool = false) {
        self.channels = channels
        self.fusedReLU = fusedReLU
        self.epsilon = epsilon
        self.momentum = momentum
        weight = Parameter(shape: [channels], kind: .normalization)
        bias = Parameter(shape: [channels], kind: .normalization)
        weight.value.fill(1)
        runningMean = Tensor(zeros: [channels])
        runningVariance = Tensor(shape: [channels], repeating: 1)
        mean = Tensor(zeros: [channels])
        inverseStd = Tensor(zeros: [channels])
        coefficients = (0..<5).map { _ in Tensor(zeros: [channels]) }
    }

    public var ownState: [(name: String, entry: StateEntry)] {
        [
            ("weight", .parameter(weight)), ("bias", .parameter(bias)), ("running_mean", .buffer(runningMean)),
            ("running_var", .buffer(runningVariance)), ("num_batches_tracked", .counter(batchesTracked)),
        ]
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor { forward(x, training: training, addingThenReLU: nil) }

    /// Forward, then with a `residual` that residual added and a ReLU applied, in the same pass:
    /// a residual block's last norm, its sum and its ReLU (ResidualBlock), without the norm's
    /// output to write and read back. The ReLU is the block's: backward is the norm's alone.
    public func forward(_ x: Tensor, training: Bool, addingThenReLU residual: Tensor?) -> Tensor {
        input = Inference.kept(x).map(Input.float32)
        let y = Tensor(transient: x.shape)
        normalize(x.data, shape: x.shape, training: training, adding: residual, into: y.data)
        return y
    }

    /// Forward of a convolution's output in bfloat16 (ConvModule in mixed precision), which it
    /// keeps as it is for backward: half the bytes to read, twice, and to keep. With a
    /// `residual`, as the float32 forward's.
    public func forward(_ x: BFloat16Tensor, training: Bool, addingThenReLU residual: Tensor? = nil) -> Tensor {
        input = Inference.kept(x.storage).map { _ in .bfloat16(x) }
        let y = Tensor(transient: x.shape)
        normalize(x.elements, shape: x.shape, training: training, adding: residual, into: y.data)
        return y
    }

    /// The same with the output rounded to bfloat16 as it is written: what a next convolution in
    /// bfloat16 reads, which would otherwise read float32 and convert it (ResidualBlock).
    public func forwardToBFloat16(_ x: BFloat16Tensor, training: Bool) -> BFloat16Tensor {
        input = Inference.kept(x.storage).map { _ in .bfloat16(x) }
        let y = BFloat16Tensor(transient: x.shape)
        normalize(x.elements, shape: x.shape, training: training, adding: nil, into: y.elements)
        return y
    }

    /// Normalises x into y, float32 or bfloat16 either; with a `residual`, adds it and applies a
    /// ReLU.
    private func normalize<X: FloatElements, Y: FloatElements>(
        _ x: X, shape: [Int], training: Bool, adding residual: Tensor?, into y: Y
    ) {
        precondition(shape.last == channels, "BatchNorm3d(\(channels)) got input \(shape)")
        precondition(
            residual == nil || (residual!.shape == shape && !fusedReLU),
            "BatchNorm3d\(fusedReLU ? " with its ReLU" : "") adding \(residual?.shape ?? []) to \(shape)")
        let rows = shape.dropLast().reduce(1, *)
        usedBatchStatistics = training && !frozen
        let c = channels
        let (m, s, rm, rv) = (mean.data, inverseStd.data, runningMean.data, runningVariance.data)
        if usedBatchStatistics {
            precondition(
                rows > 1, "BatchNorm3d expects more than 1 value per channel when training, got input \(shape)")
            let (batchMean, variance, count) = statistics(x, rows: rows)
            let n = Float(count)
            for j in 0..<c {
                m[j] = Float(batchMean[j])
                s[j] = 1 / (Float(variance[j]) + epsilon).squareRoot()
                rm[j] = (1 - momentum) * rm[j] + momentum * m[j]
                rv[j] = (1 - momentum) * rv[j] + momentum * Float(variance[j]) * n / max(n - 1, 1)
            }
            batchesTracked.value += 1
        } else {
            for j in 0..<c {
                m[j] = rm[j]
                s[j] = 1 / (rv[j] + epsilon).squareRoot()
            }
        }
        // y = x * scale + shift, per channel (then at least 0 with the ReLU; NaN stays NaN).
        let (sc, sh, w, b) = (coefficients[0].data, coefficients[1].data, weight.value.data, bias.value.data)
        for j in 0..<c {
            sc[j] = w[j] * s[j]
            sh[j] = b[j] - m[j] * sc[j]
        }
        let vectors = c / 8 * 8
        if let residual {
            let z = residual.data
            Parallel.forRanges(rows, minimumChunk: 256) { _, rowRange in
                for r in rowRange {
                    let at = r * c
                    for j in stride(from: 0, to: vectors, by: 8) {
                        let v = (x.load8(at + j) * sc.load8(j) + sh.load8(j)) + z.load8(at + j)
                        y.store8(v.replacing(with: 0, where: v .< 0), at + j)  // as ReLU.forward(sum:)
                    }
                    for j in vectors..<c {
                        y.store(max(x.value(at: at + j) * sc[j] + sh[j] + z[at + j], 0), at: at + j)
                    }
                }
            }
            return
        }
        let floor = fusedReLU ? Float(0) : -.infinity
        Parallel.forRanges(rows, minimumChunk: 256) { _, rowRange in
            for r in rowRange {
                let at = r * c
                for j in stride(from: 0, to: vectors, by: 8) {
                    let v = x.load8(at + j) * sc.load8(j) + sh.load8(j)
                    y.store8(v.replacing(with: floor, where: v .<= floor), at + j)  // as max(v, floor)
                }
                for j in vectors..<c { y.store(max(x.value(at: at + j) * sc[j] + sh[j], floor), at: at + j) }
            }
        }
    }

    /// Per-channel mean and biased variance over the batch (every process's when synchronised),
    /// and the number of values per channel, in one pass over x (`rows` rows of the channels):
    /// sums of d = x - shift and d² in Double, where the shift is the running mean (the same in
    /// every process; 0 where it is not finite). Shifted near the mean, E[d²] - E[d]² loses no
    /// precision worth having, and the data is read once, not twice.
    func statistics<X: FloatElements>(_ x: X, rows: Int) -> (mean: [Double], variance: [Double], count: Double) {
        let c = channels
        let shift = (0..<c).map { j in runningMean.data[j].isFinite ? Double(runningMean.data[j]) : 0 }
        var sums =
            shift.withUnsafeBufferPointer { s in
                let terms = ShiftedMoments(x: x, channels: c, shift: UnsafeMutablePointer(mutating: s.baseAddress!))
                return columnSumPairs(rows: rows, channels: c, terms)
            } + [Double(rows)]
        synchronize?(&sums)
        let n = sums.removeLast()
        let shifted = (0..<c).map { sums[$0] / n }
        return (
            (0..<c).map { shift[$0] + shifted[$0] },
            (0..<c).map { max(0, sums[c + $0] / n - shifted[$0] * shifted[$0]) }, n
        )
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let dx = Tensor(transient: dy.shape)
        inputGradient(dy, into: dx.data)
        return dx
    }

    /// Backward, the input gradient rounded to bfloat16 as it is written: what a convolution in
    /// mixed precision reads, which would otherwise read float32 and convert it (ConvModule).
    public func backwardInBFloat16(_ dy: Tensor) -> BFloat16Tensor {
        let dx = BFloat16Tensor(transient: dy.shape)
        inputGradient(dy, into: dx.elements)
        return dx
    }

    /// The parameters' gradients added to theirs, and the input gradient written to dx, float32
    /// or bfloat16 either.
    private func inputGradient<DX: FloatElements>(_ dy: Tensor, into dx: DX) {
        switch input {
        case .float32(let x): inputGradient(x.data, shape: x.shape, dy, into: dx)
        case .bfloat16(let x): inputGradient(x.elements, shape: x.shape, dy, into: dx)
        case nil: preconditionFailure("BatchNorm3d.backward before forward")
        }
    }

    private func inputGradient<X: FloatElements, DX: FloatElements>(
        _ x: X, shape: [Int], _ dy: Tensor, into dx: DX
    ) {
        precondition(dy.shape == shape, "BatchNorm3d.backward got \(dy.shape), input was \(shape)")
        let (c, rows) = (channels, dy.rows)
        let (m, s) = (mean.data, inverseStd.data)
        // Raw pointers taken once, so the loops below vectorise. The gradient reaching the
        // normalisation is dy, or with the fused ReLU dy where the output, x * scale + shift as
        // forward computed it, is above 0.
        let (gp, fused) = (dy.data, fusedReLU)
        let (sc, sh) = (coefficients[0].data, coefficients[1].data)
        // Per channel: sum(dy) and sum(dy * xhat), where xhat = (x - mean) * inverseStd.
        let vectors = c / 8 * 8
        let sums = columnSumPairs(
            rows: rows, channels: c,
            GradientMoments(x: x, dy: gp, channels: c, fusedReLU: fused, scale: sc, shift: sh, mean: m, inverseStd: s))
        // The parameters' gradients are this process's (a data-parallel job averages them, as
        // every gradient); the statistics' are the global batch's when synchronised.
        if weight.requiresGradient { for j in 0..<c { weight.gradient.data[j] += Float(sums[c + j]) } }
        if bias.requiresGradient { for j in 0..<c { bias.gradient.data[j] += Float(sums[j]) } }
        var global = sums + [Double(rows)]
        if usedBatchStatistics { synchronize?(&global) }
        let n = global.removeLast()

        // With batch statistics: dx = w * s * (dy - mean(dy) - xhat * mean(dy * xhat)).
        // With running statistics, which are constants: dx = w * s * dy.
        let (gn, md, mx) = (coefficients[2].data, coefficients[3].data, coefficients[4].data)
        for j in 0..<c {
            gn[j] = weight.value.data[j] * s[j]
            (md[j], mx[j]) = usedBatchStatistics ? (Float(global[j] / n), Float(global[c + j] / n)) : (0, 0)
        }
        Parallel.forRanges(rows, minimumChunk: 256) { _, rowRange in
            for r in rowRange {
                let (at, gi) = (r * c, gp + r * c)
                for j in stride(from: 0, to: vectors, by: 8) {
                    let x = x.load8(at + j)
                    let g = fused ? reluMasked(gi.load8(j), where: x * sc.load8(j) + sh.load8(j)) : gi.load8(j)
                    dx.store8(gn.load8(j) * (g - md.load8(j) - (x - m.load8(j)) * s.load8(j) * mx.load8(j)), at + j)
                }
                for j in vectors..<c {
                    let x = x.value(at: at + j)
                    let g = !fused || x * sc[j] + sh[j] > 0 ? gi[j] : 0
                    dx.store(gn[j] * (g - md[j] - (x - m[j]) * s[j] * mx[j]), at: at + j)
                }
            }
        }
    }
}

/// The terms of BatchNorm's statistics: d = x - shift and d², per channel (`statistics`).
private struct ShiftedMoments<X: FloatElements>: ColumnPairTerms {
    let x: X
    let channels: Int
    let shift: UnsafeMutablePointer<Double>

    @inline(__always) func terms(row: Int, columns j: Int) -> (SIMD8<Double>, SIMD8<Double>) {
        let d = widened(x.load8(row * channels + j)) - shift.load8(j)
        return (d, d * d)
    }

    @inline(__always) func terms(row: Int, column j: Int) -> (Double, Double) {
        let d = Double(x.value(at: row * channels + j)) - shift[j]
        return (d, d * d)
    }
}

/// The terms of BatchNorm's backward sums: g and g * xhat, per channel, where g is dy (with the
/// fused ReLU, dy where the output x * scale + shift is above 0) and xhat = (x - mean) * inverseStd.
private struct GradientMoments<X: FloatElements>: ColumnPairTerms {
    let x: X
    let dy: UnsafeMutablePointer<Float>
    let channels: Int
    let fusedReLU: Bool
    let scale, shift, mean, inverseStd: UnsafeMutablePointer<Float>

    @inline(__always) func terms(row: Int, columns j: Int) -> (SIMD8<Double>, SIMD8<Double>) {
        let at = row * channels + j
        let x = x.load8(at)
        let g = fusedReLU ? reluMasked(dy.load8(at), where: x * scale.load8(j) + shift.load8(j)) : dy.load8(at)
        return (widened(g), widened(g * (x - mean.load8(j)) * inverseStd.load8(j)))
    }

    @inline(__always) func terms(row: Int, column j: Int) -> (Double, Double) {
        let at = row * channels + j
        let x = x.value(at: at)
        let g = !fusedReLU || x * scale[j] + shift[j] > 0 ? dy[at] : 0
        return (Double(g), Double(g * (x - mean[j]) * inverseStd[j]))
    }
}
