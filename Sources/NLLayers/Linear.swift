import NLTensor

/// y = x W^T + b over the last axis, as `torch.nn.Linear`; the weight is (out, in) as in PyTorch.
public final class Linear: Layer {
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?

    private var input: Tensor?

    public init(inputFeatures: Int, outputFeatures: Int, bias: Bool = true) {
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        weight = Parameter(shape: [outputFeatures, inputFeatures], kind: .weight)
        self.bias = bias ? Parameter(shape: [outputFeatures], kind: .bias) : nil
    }

    public var ownState: [(name: String, entry: StateEntry)] {
        [(name: "weight", entry: .parameter(weight))] + (bias.map { [(name: "bias", entry: .parameter($0))] } ?? [])
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.channels == inputFeatures, "Linear(\(inputFeatures)->\(outputFeatures)) got input \(x.shape)")
        let y = Tensor(transient: Array(x.shape.dropLast()) + [outputFeatures])
        input = Inference.kept(x)
        GEMM.multiply(
            transposeB: true, m: x.rows, n: outputFeatures, k: inputFeatures, a: x.data, lda: inputFeatures,
            b: weight.value.data, ldb: inputFeatures, c: y.data, ldc: outputFeatures)
        if let bias { addToEveryRow(y, bias.value.data) }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("Linear.backward before forward") }
        let dx = Tensor(transient: x.shape)
        if weight.requiresGradient {  // dW += dY^T X
            GEMM.multiply(
                transposeA: true, m: outputFeatures, n: inputFeatures, k: x.rows, a: dy.data, lda: outputFeatures,
                b: x.data, ldb: inputFeatures, beta: 1, c: weight.gradient.data, ldc: inputFeatures)
        }
        if let bias, bias.requiresGradient { addColumnSums(of: dy, into: bias.gradient.data) }
        GEMM.multiply(
            m: x.rows, n: inputFeatures, k: outputFeatures, a: dy.data, lda: outputFeatures,
            b: weight.value.data, ldb: inputFeatures, c: dx.data, ldc: inputFeatures)
        return dx
    }
}
