import NLTensor

/// Convolution, then optionally BatchNorm3d, then optionally ReLU: mmcv's ConvModule, whose
/// state_dict keys are "conv.*" and "bn.*". The convolution has a bias only without a norm. After a
/// norm the ReLU is the norm's fused one (one pass and one buffer fewer); without, a ReLU layer.
public final class ConvModule: Layer {
    public let conv: Conv3d
    public let norm: BatchNorm3d?
    /// The ReLU of a module without a norm.
    private let activation: ReLU?

    public init(
        inputChannels: Int, outputChannels: Int, kernelSize: Size3, stride: Size3 = Size3(1),
        padding: Size3 = Size3(0), normalized: Bool = true, activated: Bool = true
    ) {
        conv = Conv3d(
            inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: kernelSize,
            stride: stride, padding: padding, bias: !normalized)
        norm = normalized ? BatchNorm3d(channels: outputChannels, fusedReLU: activated) : nil
        activation = activated && !normalized ? ReLU() : nil
    }

    public var children: [(name: String, layer: Layer)] {
        [(name: "conv", layer: conv)] + (norm.map { [(name: "bn", layer: $0)] } ?? [])
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor { forward(x, training: training, addingThenReLU: nil) }

    /// Forward, then with a `residual` (a module with a norm and no ReLU of its own) that residual
    /// added and a ReLU applied by the norm as it writes (BatchNorm3d's): a residual block's last
    /// module, its sum and its ReLU, whose backward is the block's.
    public func forward(_ x: Tensor, training: Bool, addingThenReLU residual: Tensor?) -> Tensor {
        precondition(
            residual == nil || (norm != nil && activation == nil),
            "ConvModule adds a residual only in its norm, which it lacks or follows with a ReLU of its own")
        // In bfloat16 the convolution's output reaches the norm in bfloat16, as PyTorch's
        // autocast hands it over; the emulation rounds it likewise.
        if let norm, conv.algorithm == .bfloat16 {
            return norm.forward(conv.forwardInBFloat16(x), training: training, addingThenReLU: residual)
        }
        var y = conv.forward(x, training: training)
        if norm != nil, conv.algorithm == .emulatedBFloat16 { y = y.roundedToBFloat16() }
        if let norm { y = norm.forward(y, training: training, addingThenReLU: residual) }
        if let activation { y = activation.forward(y, training: training) }
        return y
    }

    /// Whether it hands its output to a next convolution in bfloat16 (ResidualBlock): its
    /// convolution computes in bfloat16 and a norm follows it.
    public var handsOverBFloat16: Bool { norm != nil && conv.algorithm == .bfloat16 }

    /// Forward of a module that `handsOverBFloat16`, its output written in bfloat16 by the norm,
    /// from input in float32 or (from another such module) in bfloat16; and forward from
    /// bfloat16 to float32. The same values, rounded where the next convolution would round them.
    public func forwardToBFloat16(_ x: Tensor, training: Bool) -> BFloat16Tensor {
        norm!.forwardToBFloat16(conv.forwardInBFloat16(x), training: training)
    }

    public func forwardToBFloat16(_ x: BFloat16Tensor, training: Bool) -> BFloat16Tensor {
        norm!.forwardToBFloat16(conv.forwardInBFloat16(x), training: training)
    }

    public func forward(_ x: BFloat16Tensor, training: Bool, addingThenReLU residual: Tensor? = nil) -> Tensor {
        norm!.forward(conv.forwardInBFloat16(x), training: training, addingThenReLU: residual)
    }

    public func backward(_ dy: Tensor) -> Tensor { backward(dy, addingInputGradientTo: nil) }

    /// Backward, with the input gradient added to `sum` (returned): see `Conv3d`'s.
    public func backward(_ dy: Tensor, addingInputGradientTo sum: Tensor?) -> Tensor {
        var g = dy
        if let activation { g = activation.backward(g) }
        if let norm {
            // In bfloat16 the norm's gradient is written as the convolution reads it.
            if conv.algorithm == .bfloat16 {
                return conv.backward(norm.backwardInBFloat16(g), addingInputGradientTo: sum)
            }
            g = norm.backward(g)
        }
        return conv.backward(g, addingInputGradientTo: sum)
    }
}
