import Foundation
import NLModels
import Synchronization
import NLData
import NLDistributed
import NLLayers
import NLTensor
import NLVideo

/// The optimizer of a run ([train] optimizer), over the trainable parameters, with weight decay
/// optionally not on normalisation weights and biases (mmcv's norm_decay_mult and
/// bias_decay_mult 0). For each parameter p with gradient g, first multiplied by the clipping
/// coefficient (torch.nn.utils.clip_grad_norm_):
///
/// SGD with momentum, as `torch.optim.SGD` (dampening 0):
///
///     g = g + weight_decay * p
///     b = g on the first step, else momentum * b + g
///     g = g + momentum * b with Nesterov, else b
///     p = p - lr * g
///
/// AdamW, as `torch.optim.AdamW` (decoupled weight decay, bias-corrected moments), at step t:
///
///     p = p - lr * weight_decay * p
///     m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
///     p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
public final class Optimizer {
    public enum Rule: Sendable, Equatable {
        case sgd(momentum: Float, nesterov: Bool)
        /// Double, as PyTorch's hyperparameters: 1 - beta2 from a float 0.999 is 4.7e-5 off.
        case adamw(beta1: Double, beta2: Double, epsilon: Double)
    }

    public let rule: Rule
    public let weightDecay: Float
    /// Whether normalisation weights and biases are decayed too.
    public let decayNormAndBias: Bool
    /// The parameters it updates, under their state_dict names.
    public let parameters: [(name: String, parameter: Parameter)]
    /// SGD's momentum buffers, or AdamW's first moments, by parameter name; absent until a
    /// parameter's first step.
    public private(set) var buffers: [String: Tensor] = [:]
    /// AdamW's second moments, likewise.
    public private(set) var secondMoments: [String: Tensor] = [:]
    /// Steps taken (AdamW's bias correction counts them).
    public private(set) var steps = 0

    public init(
        parameters: [(name: String, parameter: Parameter)], rule: Rule, weightDecay: Double,
        decayNormAndBias: Bool = true
    ) {
        (self.parameters, self.rule) = (parameters, rule)
        self.weightDecay = Float(weightDecay)
        self.decayNormAndBias = decayNormAndBias
    }

    /// SGD with momentum.
    public convenience init(
        parameters: [(name: String, parameter: Parameter)], momentum: Double, nesterov: Bool, weightDecay: Double,
        decayNormAndBias: Bool = true
    ) {
        self.init(
            parameters: parameters, rule: .sgd(momentum: Float(momentum), nesterov: nesterov), weightDecay: weightDecay,
            decayNormAndBias: decayNormAndBias)
    }

    /// [train]'s optimizer over `model`'s trainable parameters.
    public convenience init(model: Recognizer, _ train: TrainSection) {
        let rule: Rule =
            switch train.optimizer {
            case .sgd: .sgd(momentum: Float(train.momentum), nesterov: train.nesterov)
            case .adamw: .adamw(beta1: train.betas[0], beta2: train.betas[1], epsilon: train.eps)
            }
        self.init(
            parameters: model.parameters.filter { $0.parameter.requiresGradient }, rule: rule,
            weightDecay: train.weightDecay, decayNormAndBias: train.decayNormAndBias)
    }

    /// The global L2 norm of the trainable gradients.
    public func gradientNorm() -> Double {
        parameters.reduce(0.0) { $0 + ($1.parameter.requiresGradient ? sumOfSquares($1.parameter.gradient) : 0) }
            .squareRoot()
    }

    /// What clip_grad_norm_ multiplies the gradients by to bring their global norm to at most
    /// `maxNorm` (max_norm / (norm + 1e-6), or 1): `step` applies it as it reads them.
    public func clipCoefficient(maxNorm: Double) -> Float {
        min(1, Float(maxNorm / (gradientNorm() + 1e-6)))
    }

    /// One update with learning rate `lr`, each gradient first multiplied by `gradientScale`
    /// (clipping). Eight floats at a time, over the threads: the pass reads each weight, gradient
    /// and state once. Returns the first parameter whose weights or state are no longer finite
    /// after it (a diverging run), or nil: noticed on the way (x - x is 0 for every finite x), at
    /// no cost a step shows.
    @discardableResult
    public func step(lr: Double, gradientScale: Float = 1) -> String? {
        steps += 1
        var nonFinite: String?
        for (name, p) in parameters where p.requiresGradient {
            let decay = decayNormAndBias || p.kind == .weight ? weightDecay : 0
            let first = buffers[name] == nil
            let buffer = buffers[name] ?? Tensor(zeros: p.value.shape)
            buffers[name] = buffer
            let finite: Bool
            switch rule {
            case .sgd(let momentum, let nesterov):
                finite = elementwise(
                    p, buffer, nil,
                    SGDUpdate(
                        lr: Float(lr), c: gradientScale, decay: decay, first: first, momentum: momentum,
                        nesterov: nesterov))
            case .adamw(let beta1, let beta2, let epsilon):
                let second = secondMoments[name] ?? Tensor(zeros: p.value.shape)
                secondMoments[name] = second
                // PyTorch's bias corrections, in Double as it computes them
                let (c1, c2) = (1 - pow(beta1, Double(steps)), 1 - pow(beta2, Double(steps)))
                finite = elementwise(
                    p, buffer, second,
                    AdamWUpdate(
                        lr: Float(lr), c: gradientScale, decay: decay, keep1: Float(1 - beta1), beta2: Float(beta2),
                        keep2: Float(1 - beta2), epsilon: Float(epsilon), stepSize: Float(lr / c1),
                        root: Float(c2.squareRoot())))
            }
            if nonFinite == nil && !finite { nonFinite = name }
        }
        return nonFinite
    }

    /// Runs `update` (weights, gradients, first and second state) over a parameter's elements,
    /// eight at a time over the threads, storing what it returns; whether everything stayed finite.
    /// Generic over the rule, so that its arithmetic is compiled into the loop: a closure was
    /// called for every eight elements (SGD's pass over nl_i3d_r50's 35 million parameters on a
    /// Zen 4, 2 threads: a median of 17.7 ms a step, 13.3 ms generic; a C loop moving the same
    /// bytes, 12 ms).
    private func elementwise<Update: ElementUpdate>(
        _ p: Parameter, _ first: Tensor, _ second: Tensor?, _ update: Update
    ) -> Bool {
        let (w, g, a, n) = (p.value.data, p.gradient.data, first.data, p.value.count)
        let b = second?.data
        let finite = Atomic<Bool>(true)
        forEachElementRange(n) { range in
            var i = range.lowerBound, zero = SIMD8<Float>()
            while i < range.upperBound {
                let count = min(8, range.upperBound - i)
                var (wv, gv, av, bv) = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
                if count == 8 {
                    (wv, gv, av) = (w.load8(i), g.load8(i), a.load8(i))
                    if let b { bv = b.load8(i) }
                } else {
                    for j in 0..<count { (wv[j], gv[j], av[j], bv[j]) = (w[i + j], g[i + j], a[i + j], b?[i + j] ?? 0) }
                }
                let (nw, na, nb) = update(wv, gv, av, bv)
                if count == 8 {
                    w.store8(nw, i)
                    a.store8(na, i)
                    if let b { b.store8(nb, i) }
                } else {
                    for j in 0..<count {
                        (w[i + j], a[i + j]) = (nw[j], na[j])
                        b?[i + j] = nb[j]
                    }
                }
                zero += (nw - nw) + (na - na) + (nb - nb)  // lanes past count hold finite values of zeros
                i += count
            }
            if zero.sum() != 0 { finite.store(false, ordering: .relaxed) }
        }
        return finite.load(ordering: .relaxed)
    }

    /// The key of AdamW's second moments and of its step count, under "optimizer.".
    static let secondMomentPrefix = "exp_avg_sq.", stepsKey = "steps"

    /// The state in PyTorch's layouts, for checkpoints: SGD's momentum or AdamW's first moments
    /// under "optimizer.<key>", AdamW's second moments under "optimizer.exp_avg_sq.<key>" and its
    /// step count as "optimizer.steps".
    public func save(into file: inout SafeTensors) {
        for (name, p) in parameters {
            if let buffer = buffers[name] { file.set(Checkpoint.optimizerPrefix + name, p.inCheckpointLayout(buffer)) }
            if let second = secondMoments[name] {
                file.set(Checkpoint.optimizerPrefix + Self.secondMomentPrefix + name, p.inCheckpointLayout(second))
            }
        }
        if case .adamw = rule {
            file.set(Checkpoint.optimizerPrefix + Self.stepsKey, int64s: [Int64(steps)], shape: [])
        }
    }

    /// Restores the state `save` wrote; a parameter without it starts afresh. The state of the
    /// other optimizer is refused: it would be read as this one's.
    public func load(from file: SafeTensors, path: String) throws {
        buffers = [:]
        secondMoments = [:]
        let savedSteps = file.int64s(Checkpoint.optimizerPrefix + Self.stepsKey)?.first
        let hasState = file.names.contains { $0.hasPrefix(Checkpoint.optimizerPrefix) }
        switch rule {
        case .sgd where savedSteps != nil:
            throw CheckpointError(
                path,
                "holds AdamW's moments, and train.optimizer is sgd: resume with train.optimizer = adamw, or fine-tune from it with --init"
            )
        case .adamw where hasState && savedSteps == nil:
            throw CheckpointError(
                path,
                "holds SGD's momentum, and train.optimizer is adamw: resume with train.optimizer = sgd, or fine-tune from it with --init"
            )
        default: break
        }
        steps = Int(savedSteps ?? 0)
        func restored(_ key: String, of name: String, _ p: Parameter) throws -> Tensor? {
            guard let stored = file.tensor(Checkpoint.optimizerPrefix + key) else { return nil }
            guard stored.shape == p.checkpointShape else {
                throw CheckpointError(
                    path, "optimizer state of \(name) has shape \(stored.shape), the parameter \(p.checkpointShape)")
            }
            let state = Tensor(zeros: p.value.shape)
            state.copy(from: p.fromCheckpointAxes.map { stored.permuted($0) } ?? stored)
            return state
        }
        for (name, p) in parameters {
            buffers[name] = try restored(name, of: name, p)
            secondMoments[name] = try restored(Self.secondMomentPrefix + name, of: name, p)
        }
    }
}

/// The sum of the squares of `t`'s elements, in Double: blocks of 4096 summed eight lanes at a
/// time over the threads, then the blocks in order, so that the result depends neither on the
/// thread count nor on timing.
func sumOfSquares(_ t: Tensor) -> Double {
    let (x, n, block) = (t.data, t.count, 4096)
    guard n > 0 else { return 0 }
    var partials = [Double](repeating: 0, count: (n + block - 1) / block)
    partials.withUnsafeMutableBufferPointer { out in
        let out = out.baseAddress!
        Parallel.forRanges((n + block - 1) / block) { _, blocks in
            for k in blocks {
                var lanes = SIMD8<Double>.zero
                var i = k * block
                let end = min(n, i + block)
                while i + 8 <= end {
                    let v = widened(x.load8(i))
                    lanes += v * v
                    i += 8
                }
                var sum = lanes.sum()
                while i < end { sum += Double(x[i]) * Double(x[i]); i += 1 }
                out[k] = sum
            }
        }
    }
    return partials.reduce(0, +)
}

/// An optimizer's rule for eight parameters at a time: the new weights, first and second state
/// from the weights, the gradients (times `c`, the clipping coefficient) and the state.
private protocol ElementUpdate {
    func callAsFunction(_ w: Float8, _ g: Float8, _ a: Float8, _ b: Float8) -> (Float8, Float8, Float8)
}

/// SGD: d = c g + decay w; b = d at first, then m b + d; w -= lr (d + m b with Nesterov, else b).
private struct SGDUpdate: ElementUpdate {
    let lr, c, decay: Float, first: Bool, momentum: Float, nesterov: Bool

    @inline(__always) func callAsFunction(_ w: Float8, _ g: Float8, _ b: Float8, _: Float8) -> (Float8, Float8, Float8)
    {
        var d = g
        if c != 1 { d *= c }
        d += decay * w
        let nb = first ? d : momentum * b + d
        return (w - lr * (nesterov ? d + momentum * nb : nb), nb, .zero)
    }
}

/// AdamW (see Optimizer): first moments m, second moments v.
private struct AdamWUpdate: ElementUpdate {
    let lr, c, decay, keep1, beta2, keep2, epsilon, stepSize, root: Float

    @inline(__always) func callAsFunction(
        _ w: Float8, _ g: Float8, _ m: Float8, _ v: Float8
    ) -> (Float8, Float8, Float8) {
        var g = g
        if c != 1 { g *= c }
        let nm = m + keep1 * (g - m)  // torch's lerp, weight 1 - beta1
        let nv = beta2 * v + keep2 * g * g
        let decayed = w - (lr * decay) * w
        return (decayed - stepSize * nm / (nv.squareRoot() / root + epsilon), nm, nv)
    }
}
