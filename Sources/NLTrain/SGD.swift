import Foundation
import NLModels

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

    public init(parameters: [(name: String, parameter: Parameter)], momentum: Double, nesterov: Bool, weightDecay: Double,
                decayNormAndBias: Bool = true) {
        self.parameters = parameters
        self.momentum = Float(momentum)
        self.nesterov = nesterov
        self.weightDecay = Float(weightDecay)
        self.decayNormAndBias = decayNormAndBias
    }

    /// SGD over `model`'s trainable parameters with [train]'s momentum, Nesterov and weight decay.
    public convenience init(model: Recognizer, _ train: TrainSection) {
        self.init(parameters: model.parameters.filter { $0.parameter.requiresGradient }, momentum: train.momentum, nesterov: train.nesterov,
                  weightDecay: train.weightDecay, decayNormAndBias: train.decayNormAndBias)
    }

    /// The global L2 norm of the trainable gradients.
    public func gradientNorm() -> Double {
        var sum = 0.0
        for (_, p) in parameters where p.requiresGradient {
            let g = p.gradient.data
            for i in 0..<p.gradient.count { sum += Double(g[i]) * Double(g[i]) }
        }
        return sum.squareRoot()
    }

    /// Scales all gradients so their global norm is at most `maxNorm` (clip_grad_norm_'s
    /// max_norm / (norm + 1e-6)); returns the norm before clipping.
    @discardableResult
    public func clipGradients(maxNorm: Double) -> Double {
        let norm = gradientNorm()
        let coefficient = Float(maxNorm / (norm + 1e-6))
        guard coefficient < 1 else { return norm }
        for (_, p) in parameters where p.requiresGradient {
            let g = p.gradient.data
            for i in 0..<p.gradient.count { g[i] *= coefficient }
        }
        return norm
    }

    /// One update with learning rate `lr`.
    public func step(lr: Double) {
        let lr = Float(lr)
        for (name, p) in parameters where p.requiresGradient {
            let decay = decayNormAndBias || p.kind == .weight ? weightDecay : 0
            let (w, g, n) = (p.value.data, p.gradient.data, p.value.count)
            let first = buffers[name] == nil
            let buffer = buffers[name] ?? Tensor(zeros: p.value.shape)
            buffers[name] = buffer
            let b = buffer.data
            let (m, nesterov) = (momentum, self.nesterov)
            forEachElementRange(n) { range in
                for i in range {
                    let d = g[i] + decay * w[i]
                    b[i] = first ? d : m * b[i] + d
                    w[i] -= lr * (nesterov ? d + m * b[i] : b[i])
                }
            }
        }
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
                throw CommandError(.data, "\(path): momentum of \(name) has shape \(stored.shape), the parameter \(p.checkpointShape)")
            }
            let buffer = Tensor(zeros: p.value.shape)
            buffer.copy(from: p.fromCheckpointAxes.map { stored.permuted($0) } ?? stored)
            buffers[name] = buffer
        }
    }
}
