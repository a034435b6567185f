import NLLayers
import NLTensor

/// A residual block of ResNet3d, with the blocks mmaction2 attaches to it:
///
///     out = relu(branch(x) [-> context] + shortcut(x))  [-> non-local]
///
/// where the branch is conv1, conv2 (and conv3 for bottlenecks), the shortcut is `downsample`
/// or the identity, a GCNet context block (if any) ends the branch and a non-local block (if any)
/// follows the block.
public final class ResidualBlock: Layer {
    /// conv1..conv2 (basic) or conv1..conv3 (bottleneck); the last has no ReLU.
    public let convs: [ConvModule]
    public let downsample: ConvModule?
    public let context: ContextBlock?
    public let nonLocal: NonLocalBlock?
    private let relu = ReLU()

    /// The block a ResNet3d stage builds at `index`; see `ModelSpec` for the options.
    init(
        spec: ModelSpec, inputChannels: Int, planes: Int, spatialStride: Int, inflated: Bool,
        withNonLocal: Bool, withContext: Bool
    ) {
        let bottleneck = spec.architecture!.bottleneck
        let outputChannels = bottleneck ? planes * 4 : planes
        func module(
            _ cin: Int, _ cout: Int, _ kernel: Size3, stride: Size3 = Size3(1), activated: Bool = true
        ) -> ConvModule {
            let padding = Size3((kernel.t - 1) / 2, (kernel.h - 1) / 2, (kernel.w - 1) / 2)
            return ConvModule(
                inputChannels: cin, outputChannels: cout, kernelSize: kernel, stride: stride,
                padding: padding, activated: activated)
        }
        let strided = Size3(1, spatialStride, spatialStride)
        if bottleneck {  // pytorch style: the spatial stride is on the 3x3 conv
            let (k1, k2) =
                !inflated
                ? (Size3(1), Size3(1, 3, 3))
                : spec.inflateStyle == .t3x1x1 ? (Size3(3, 1, 1), Size3(1, 3, 3)) : (Size3(1), Size3(3))
            convs = [
                module(inputChannels, planes, k1), module(planes, planes, k2, stride: strided),
                module(planes, outputChannels, Size3(1), activated: false),
            ]
        } else {
            let k = inflated ? Size3(3) : Size3(1, 3, 3)
            convs = [module(inputChannels, planes, k, stride: strided), module(planes, planes, k, activated: false)]
        }
        downsample =
            spatialStride != 1 || inputChannels != outputChannels
            ? module(inputChannels, outputChannels, Size3(1), stride: strided, activated: false) : nil
        context =
            withContext
            ? ContextBlock(
                channels: outputChannels, ratio: spec.contextRatio, pooling: spec.contextPooling,
                channelAdd: spec.contextFusions.contains("channel_add"),
                channelMul: spec.contextFusions.contains("channel_mul"))
            : nil
        nonLocal =
            withNonLocal
            ? NonLocalBlock(
                channels: outputChannels, mode: spec.nonLocalMode, useScale: spec.nonLocalUseScale,
                subSample: spec.nonLocalSubSample)
            : nil
    }

    public var outputChannels: Int { convs.last!.conv.outputChannels }

    public var children: [(name: String, layer: Layer)] {
        var list: [(name: String, layer: Layer)] = convs.enumerated().map { ("conv\($0.offset + 1)", $0.element) }
        if let downsample { list.append(("downsample", downsample)) }
        if let context { list.append(("context_block", context)) }
        if let nonLocal { list.append(("non_local_block", nonLocal)) }
        return list
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let shortcut = downsample?.forward(x, training: training) ?? x
        // Without a context block the last norm adds the shortcut and applies the ReLU as it
        // writes (ConvModule's addingThenReLU); a context block comes between them.
        let last = convs.last!, residual = context == nil ? shortcut : nil
        var branch: Tensor
        if convs.allSatisfy(\.handsOverBFloat16) {
            // In bfloat16 each norm writes what the next convolution reads, in bfloat16, the
            // rounding that convolution's conversion would make (a block whose convolutions the
            // tuning left partly float32 hands over float32).
            var handed = convs[0].forwardToBFloat16(x, training: training)
            for conv in convs.dropFirst().dropLast() { handed = conv.forwardToBFloat16(handed, training: training) }
            branch = last.forward(handed, training: training, addingThenReLU: residual)
        } else {
            branch = x
            for conv in convs.dropLast() { branch = conv.forward(branch, training: training) }
            branch = last.forward(branch, training: training, addingThenReLU: residual)
        }
        let out: Tensor
        if let context {
            out = relu.forward(sum: context.forward(branch, training: training), shortcut)
        } else {
            out = branch
            relu.keep(output: out)
        }
        return nonLocal?.forward(out, training: training) ?? out
    }

    /// The branch's first convolution adds its input gradient to the shortcut's, which is then
    /// dx: an identity shortcut's is dSum itself, which the branch has read by then.
    public func backward(_ dy: Tensor) -> Tensor {
        let dSum = relu.backward(nonLocal?.backward(dy) ?? dy)
        let dShortcut = downsample?.backward(dSum) ?? dSum
        var dBranch = context?.backward(dSum) ?? dSum
        for conv in convs.dropFirst().reversed() { dBranch = conv.backward(dBranch) }
        return convs[0].backward(dBranch, addingInputGradientTo: dShortcut)
    }
}
