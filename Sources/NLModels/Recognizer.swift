import Dispatch
import NLLayers
import NLTensor

/// mmaction2's ResNet3d backbone: a stem (conv1, max pool), four stages of residual blocks, and
/// a (2, 1, 1) max pool after the first stage.
public final class ResNet3d: Layer {
    public let spec: ModelSpec
    public let conv1: ConvModule
    public let maxpool: MaxPool3d
    public let pool2: MaxPool3d?
    /// stages[i][j] is "layer{i+1}.{j}".
    public let stages: [[ResidualBlock]]

    public init(spec: ModelSpec) {
        precondition(
            spec.problems().isEmpty, "invalid model: \(spec.problems().map(\.message).joined(separator: "; "))")
        self.spec = spec
        let k = spec.conv1Kernel
        conv1 = ConvModule(
            inputChannels: 3, outputChannels: spec.baseChannels, kernelSize: k,
            stride: Size3(spec.conv1StrideT, 2, 2), padding: Size3((k.t - 1) / 2, (k.h - 1) / 2, (k.w - 1) / 2))
        conv1.conv.computesInputGradient = false  // the input is the clip
        maxpool = MaxPool3d(kernelSize: Size3(1, 3, 3), stride: Size3(spec.pool1StrideT, 2, 2), padding: Size3(0, 1, 1))
        pool2 = spec.withPool2 ? MaxPool3d(kernelSize: Size3(2, 1, 1)) : nil
        let (blocks, bottleneck) = spec.architecture!
        var channels = spec.baseChannels
        var stages: [[ResidualBlock]] = []
        for (i, count) in blocks.enumerated() {
            let planes = spec.baseChannels << i
            stages.append(
                (0..<count).map { j in
                    ResidualBlock(
                        spec: spec, inputChannels: j == 0 ? channels : planes * (bottleneck ? 4 : 1),
                        planes: planes, spatialStride: j == 0 && i > 0 ? 2 : 1,
                        inflated: spec.inflatePerBlock[i][j] == 1, withNonLocal: spec.nonLocalPerBlock[i][j] == 1,
                        withContext: spec.contextPerBlock[i][j] == 1)
                })
            channels = stages.last!.last!.outputChannels
        }
        self.stages = stages
        applyFreezing()
    }

    public var featureChannels: Int { stages.last!.last!.outputChannels }

    /// frozen_stages and norm_eval, as mmaction2's _freeze_stages and train(): frozen parts keep
    /// their parameters and use running statistics; norm_eval puts every BatchNorm on running
    /// statistics.
    private func applyFreezing() {
        let frozen: [Layer] =
            spec.frozenStages < 0 ? [] : [conv1] + stages.prefix(spec.frozenStages).joined().map { $0 as Layer }
        for layer in frozen {
            for (_, p) in layer.parameters { p.requiresGradient = false }
        }
        for layer in spec.normEval ? [self] : frozen {
            for norm in ([layer] + layer.descendants).compactMap({ $0 as? BatchNorm3d }) { norm.frozen = true }
        }
    }

    public var children: [(name: String, layer: Layer)] {
        [("conv1", conv1)]
            + stages.enumerated().flatMap { i, blocks in
                blocks.enumerated().map { j, block in (name: "layer\(i + 1).\(j)", layer: block as Layer) }
            }
    }

    /// The layers in the order forward runs them, under their state_dict paths: the stem, each
    /// residual block (with its non-local or context block), pool2 after the first stage.
    public var sequence: [(name: String, layer: Layer)] {
        var list: [(name: String, layer: Layer)] = [("conv1", conv1), ("maxpool", maxpool)]
        for (i, blocks) in stages.enumerated() {
            list += blocks.enumerated().map { j, block in (name: "layer\(i + 1).\(j)", layer: block as Layer) }
            if i == 0, let pool2 { list.append(("pool2", pool2)) }
        }
        return list
    }

    /// How many layers of `sequence`, from its start, get no gradient: the stem and the frozen
    /// stages (with pool2 when the first stage is frozen).
    private var frozenPrefix: Int {
        guard spec.frozenStages >= 0 else { return 0 }
        let frozenBlocks = stages.prefix(spec.frozenStages).reduce(0) { $0 + $1.count }
        return 2 + frozenBlocks + (spec.frozenStages >= 1 && pool2 != nil ? 1 : 0)
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor { forward(x, training: training, timing: nil) }

    public func backward(_ dy: Tensor) -> Tensor { backward(dy, timing: nil) }

    /// Forward, reporting each layer of `sequence` and its seconds to `timing`.
    public func forward(_ x: Tensor, training: Bool, timing: LayerTiming?) -> Tensor {
        sequence.reduce(x) { y, step in timed(step.name, timing) { step.layer.forward(y, training: training) } }
    }

    /// Back to the first trainable layer; frozen stages below it need no gradient, and nothing
    /// needs the clip's: the result is an empty tensor.
    public func backward(_ dy: Tensor, timing: LayerTiming?) -> Tensor {
        var g = dy
        for step in sequence.dropFirst(max(frozenPrefix, 1)).reversed() {
            g = timed(step.name, timing) { step.layer.backward(g) }
        }
        guard frozenPrefix == 0 else { return Tensor(zeros: [0]) }
        return timed("conv1", timing) { conv1.backward(g) }
    }
}

/// Receives a layer's name and the seconds one call of it took.
public typealias LayerTiming = (String, Double) -> Void

func timed(_ name: String, _ timing: LayerTiming?, _ body: () -> Tensor) -> Tensor {
    guard let timing else { return body() }
    let start = DispatchTime.now().uptimeNanoseconds
    let result = body()
    timing(name, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    return result
}

/// mmaction2's I3DHead: global average pooling, dropout, and a linear classifier "fc_cls".
public final class I3DHead: Layer {
    public let pool = GlobalAveragePool()
    public let dropout: Dropout
    public let fc: Linear

    public init(inputChannels: Int, classes: Int, dropout probability: Float) {
        dropout = Dropout(probability: probability)
        fc = Linear(inputFeatures: inputChannels, outputFeatures: classes)
    }

    public var children: [(name: String, layer: Layer)] { [("fc_cls", fc)] }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        fc.forward(dropout.forward(pool.forward(x, training: training), training: training), training: training)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        pool.backward(dropout.backward(fc.backward(dy)))
    }
}

/// mmaction2's Recognizer3D: clips (N, T, H, W, 3) to class scores (N, classes). Its state_dict
/// keys are "backbone.*" and "cls_head.*", as mmaction2's.
public final class Recognizer: Layer {
    public let spec: ModelSpec
    public let backbone: ResNet3d
    public let head: I3DHead

    /// A network initialised as mmaction2 does, from `seed`.
    public init(spec: ModelSpec, seed: UInt64 = 0) {
        self.spec = spec
        backbone = ResNet3d(spec: spec)
        head = I3DHead(inputChannels: backbone.featureChannels, classes: spec.numClasses, dropout: spec.dropout)
        var generator = SeededGenerator(seed: seed)
        initialize(using: &generator)
        head.dropout.generator = SeededGenerator(seed: seed, stream: 1)
    }

    public var children: [(name: String, layer: Layer)] { [("backbone", backbone), ("cls_head", head)] }

    public func forward(_ clip: Tensor, training: Bool) -> Tensor { forward(clip, training: training, timing: nil) }

    public func backward(_ dLogits: Tensor) -> Tensor { backward(dLogits, timing: nil) }

    /// Forward, reporting each backbone layer's seconds ("backbone.layer3.1") and the head's.
    public func forward(_ clip: Tensor, training: Bool, timing: LayerTiming?) -> Tensor {
        precondition(clip.rank == 5 && clip.channels == 3, "a clip is (N, T, H, W, 3); got \(clip.shape)")
        let features = backbone.forward(
            clip, training: training, timing: timing.map { t in { t("backbone.\($0)", $1) } })
        return timed("cls_head", timing) { head.forward(features, training: training) }
    }

    public func backward(_ dLogits: Tensor, timing: LayerTiming?) -> Tensor {
        let g = timed("cls_head", timing) { head.backward(dLogits) }
        return backbone.backward(g, timing: timing.map { t in { t("backbone.\($0)", $1) } })
    }

    /// mmaction2's initialisation: every backbone convolution Kaiming normal (fan out, ReLU gain),
    /// BatchNorm weight 1 and bias 0 (the last of each block 0 with zero_init_residual), non-local
    /// and context blocks as their own references, the classifier normal with std 0.01.
    public func initialize(using generator: inout SeededGenerator) {
        for block in backbone.stages.joined() {
            for module in block.convs + (block.downsample.map { [$0] } ?? []) {
                initializeKaiming(module, using: &generator)
            }
            if spec.zeroInitResidual { block.convs.last!.norm!.weight.value.zero() }
            block.context?.initialize(using: &generator)
            block.nonLocal?.initialize(using: &generator)
        }
        initializeKaiming(backbone.conv1, using: &generator)
        head.fc.weight.value.fillNormal(std: 0.01, using: &generator)
        head.fc.bias?.value.zero()
    }

    private func initializeKaiming(_ module: ConvModule, using generator: inout SeededGenerator) {
        let conv = module.conv
        let fanOut = conv.outputChannels * conv.kernelSize.volume
        conv.weight.value.fillNormal(std: (2 / Float(fanOut)).squareRoot(), using: &generator)
        conv.bias?.value.zero()
        if let norm = module.norm {
            norm.weight.value.fill(1)
            norm.bias.value.zero()
        }
    }
}
