import Foundation
import NLModels
import Synchronization
import NLData
import NLDistributed
import NLLayers
import NLTensor
import NLVideo

/// SGD with momentum, as `torch.optim.SGD` (dampening 0): for each trainable parameter p with
/// gradient g,
///
///     g = g + weight_decay * p                    (weight decay, optionally not on norms and biases)
///     b = g on the first step, else momentum * b + g
///     g = g + momentum * b with Nesterov, else b
///     p = p - lr * g
///
/// Gradients can first be clipped to a global L2 norm, as `torch.nn.utils.clip_grad_norm_`.
public final class SGD {
    public let momentum: Float
    public let nesterov: Bool
    public let weightDecay: Float
    /// Whether normalisation weights and biases are decayed too.
    public let decayNormAndBias: Bool
    /// The parameters it updates, under their state_dict names.
    public let parameters: [(name: String, parameter: Parameter)]
    /// Momentum buffers by parameter name; absent until a parameter's first step.
    public private(set) var buffers: [String: Tensor] = [:]

    public init(
        parameters: [(name: String, parameter: Parameter)], momentum: Double, nesterov: Bool, weightDecay: Double,
        decayNormAndBias: Bool = true
    ) {
        self.parameters = parameters
        self.momentum = Float(momentum)
        self.nesterov = nesterov
        self.weightDecay = Float(weightDecay)
        self.decayNormAndBias = decayNormAndBias
    }

    /// SGD over `model`'s trainable parameters with [train]'s momentum, Nesterov and weight decay.
    public convenience init(model: Recognizer, _ train: TrainSection) {
        self.init(
            parameters: model.parameters.filter { $0.parameter.requiresGradient }, momentum: train.momentum,
            nesterov: train.nesterov,
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
    /// and momentum once. Returns the first parameter whose weights or momentum are no longer
    /// finite after it (a diverging run), or nil: noticed on the way (x - x is 0 for every finite
    /// x), at no cost a step shows.
    @discardableResult
    public func step(lr: Double, gradientScale: Float = 1) -> String? {
        let lr = Float(lr)
        var nonFinite: String?
        for (name, p) in parameters where p.requiresGradient {
            let decay = decayNormAndBias || p.kind == .weight ? weightDecay : 0
            let (w, g, n) = (p.value.data, p.gradient.data, p.value.count)
            let first = buffers[name] == nil
            let buffer = buffers[name] ?? Tensor(zeros: p.value.shape)
            buffers[name] = buffer
            let (b, m, nesterov, c) = (buffer.data, momentum, self.nesterov, gradientScale)
            // d = c g + decay w; b = d at first, then m b + d; w -= lr (d + m b with Nesterov, else b)
            @inline(__always) func update<V: SIMD>(_ w: V, _ g: V, _ b: V) -> (w: V, b: V) where V.Scalar == Float {
                var d = g
                if c != 1 { d *= c }
                d += decay * w
                let nb = first ? d : m * b + d
                return (w - lr * (nesterov ? d + m * nb : nb), nb)
            }
            let finite = Atomic<Bool>(true)
            forEachElementRange(n) { range in
                var i = range.lowerBound, zero = SIMD8<Float>()
                while i + 8 <= range.upperBound {
                    let (nw, nb) = update(w.load8(i), g.load8(i), b.load8(i))
                    w.store8(nw, i)
                    b.store8(nb, i)
                    zero += (nw - nw) + (nb - nb)
                    i += 8
                }
                while i < range.upperBound {
                    let (nw, nb) = update(SIMD2(w[i], 0), SIMD2(g[i], 0), SIMD2(b[i], 0))
                    (w[i], b[i]) = (nw[0], nb[0])
                    zero[0] += (nw[0] - nw[0]) + (nb[0] - nb[0])
                    i += 1
                }
                if zero.sum() != 0 { finite.store(false, ordering: .relaxed) }
            }
            if nonFinite == nil && !finite.load(ordering: .relaxed) { nonFinite = name }
        }
        return nonFinite
    }

    /// Momentum buffers in PyTorch's layouts under "optimizer.<key>", for checkpoints.
    public func save(into file: inout SafeTensors) {
        for (name, p) in parameters {
            if let buffer = buffers[name] { file.set(Checkpoint.optimizerPrefix + name, p.inCheckpointLayout(buffer)) }
        }
    }

    /// Restores momentum buffers saved by `save`; a parameter without one starts afresh.
    public func load(from file: SafeTensors, path: String) throws {
        buffers = [:]
        for (name, p) in parameters {
            guard let stored = file.tensor(Checkpoint.optimizerPrefix + name) else { continue }
            guard stored.shape == p.checkpointShape else {
                throw CheckpointError(
                    path, "momentum of \(name) has shape \(stored.shape), the parameter \(p.checkpointShape)")
            }
            let buffer = Tensor(zeros: p.value.shape)
            buffer.copy(from: p.fromCheckpointAxes.map { stored.permuted($0) } ?? stored)
            buffers[name] = buffer
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
