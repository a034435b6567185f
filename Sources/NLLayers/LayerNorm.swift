import NLTensor

/// Layer normalisation over the channels of each row, with a learned per-channel scale and shift,
/// as `torch.nn.LayerNorm([C, 1, 1, 1])` applied to a (N, C, 1, 1, 1) tensor (GCNet's transform).
public final class LayerNorm: Layer {
    public let channels: Int
    public let epsilon: Float
    public let weight: Parameter
    public let bias: Parameter

    private var input: Tensor?
    private var mean: [Float] = []
    private var inverseStd: [Float] = []

    /// `checkpointShape` is the shape PyTorch gives weight and bias, [C, 1, 1, 1] for GCNet in 3D.
    public init(channels: Int, epsilon: Float = 1e-5, checkpointShape: [Int]? = nil) {
        self.channels = channels
        self.epsilon = epsilon
        weight = Parameter(shape: [channels], kind: .normalization, checkpointShape: checkpointShape)
        bias = Parameter(shape: [channels], kind: .normalization, checkpointShape: checkpointShape)
        weight.value.fill(1)
    }

    public var ownState: [(name: String, entry: StateEntry)] {
        [("weight", .parameter(weight)), ("bias", .parameter(bias))]
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.channels == channels, "LayerNorm(\(channels)) got input \(x.shape)")
        let y = Tensor(transient: x.shape)
        input = Inference.kept(x)
        let c = channels
        mean = [Float](repeating: 0, count: x.rows)
        inverseStd = [Float](repeating: 0, count: x.rows)
        for r in 0..<x.rows {
            let (xi, yo) = (x.data + r * c, y.data + r * c)
            var sum = 0.0
            for j in 0..<c { sum += Double(xi[j]) }
            let m = sum / Double(c)
            var squares = 0.0
            for j in 0..<c { squares += (Double(xi[j]) - m) * (Double(xi[j]) - m) }
            let s = Float(1 / (squares / Double(c) + Double(epsilon)).squareRoot())
            mean[r] = Float(m)
            inverseStd[r] = s
            for j in 0..<c { yo[j] = (xi[j] - Float(m)) * s * weight.value.data[j] + bias.value.data[j] }
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("LayerNorm.backward before forward") }
        let dx = Tensor(transient: x.shape)
        let (c, w) = (channels, weight.value.data)
        for r in 0..<x.rows {
            let (xi, gi, di) = (x.data + r * c, dy.data + r * c, dx.data + r * c)
            var sumG = 0.0, sumGXhat = 0.0
            for j in 0..<c {
                let xhat = (xi[j] - mean[r]) * inverseStd[r]
                if weight.requiresGradient { weight.gradient.data[j] += gi[j] * xhat }
                if bias.requiresGradient { bias.gradient.data[j] += gi[j] }
                sumG += Double(gi[j] * w[j])
                sumGXhat += Double(gi[j] * w[j] * xhat)
            }
            let (meanG, meanGXhat) = (Float(sumG / Double(c)), Float(sumGXhat / Double(c)))
            for j in 0..<c {
                let xhat = (xi[j] - mean[r]) * inverseStd[r]
                di[j] = inverseStd[r] * (gi[j] * w[j] - meanG - xhat * meanGXhat)
            }
        }
        return dx
    }
}
