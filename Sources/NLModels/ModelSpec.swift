import NLKeys
import NLLayers
import NLTensor

/// Everything that defines a network, with mmaction2's names and defaults (ResNet3d, I3DHead).
/// Named presets give the paper's models; any field can then be changed.
public struct ModelSpec: Equatable, Sendable {
    @Key("depth", in: 18...152, "ResNet depth: 18, 34 (basic blocks), 50, 101, 152 (bottlenecks)")
    public var depth = 50
    @Key("base_channels", in: 1...1024, "channels of the stem; stage i has base * 2^i (x4 in bottlenecks)")
    public var baseChannels = 64
    @Key("num_classes", in: 1...100_000, "classes of the classifier")
    public var numClasses = 400
    @Key("dropout", in: 0...0.99, "dropout before the classifier")
    public var dropout: Float = 0.5
    @Key("conv1_kernel", "stem kernel T H W", parse: Size3.parse, show: { "\($0.t) \($0.h) \($0.w)" })
    public var conv1Kernel = Size3(5, 7, 7)
    @Key("conv1_stride_t", in: 1...8, "stem temporal stride")
    public var conv1StrideT = 2
    @Key("pool1_stride_t", in: 1...8, "temporal stride of the stem's max pool")
    public var pool1StrideT = 2
    @Key("with_pool2", "2x1x1 max pool after res2")
    public var withPool2 = true
    /// In this and the other patterns a stage given one value applies it to all its blocks, as
    /// mmaction2 does; basic blocks inflate both their convs to 3x3x3.
    @Key("inflate", "per stage, per block: 1 inflates the block (see inflate_style)")
    public var inflate: [[Int]] = [[1, 1, 1], [1, 0, 1, 0], [1, 0, 1, 0, 1, 0], [0, 1, 0]]
    @Key(
        "inflate_style", "which convs an inflated block makes 3D",
        [.t3x1x1: "first conv temporal", .t3x3x3: "second conv 3x3x3"])
    public var inflateStyle: InflateStyle = .t3x1x1
    @Key("non_local", "per stage, per block: 1 adds a non-local block after the block")
    public var nonLocal: [[Int]] = [[0], [0], [0], [0]]
    @Key("non_local_mode", "pairwise function of the non-local blocks")
    public var nonLocalMode: NonLocalBlock.Mode = .embeddedGaussian
    @Key("non_local_use_scale", "embedded_gaussian: divide scores by sqrt(C/2) before the softmax")
    public var nonLocalUseScale = false
    @Key("non_local_sub_sample", "1x2x2 max pool after phi and g")
    public var nonLocalSubSample = true
    @Key("context", "per stage, per block: 1 adds a GCNet context block after the block's last conv")
    public var context: [[Int]] = [[0], [0], [0], [0]]
    @Key("context_ratio", in: 0.001...1, "context block bottleneck ratio")
    public var contextRatio = 1.0 / 16
    @Key("context_pooling", "context block pooling", [.attention: "attention"])
    public var contextPooling: ContextBlock.Pooling = .attention
    @Key(
        "context_fusion", allowed: ["channel_add", "channel_mul"],
        "context block fusion: channel_add, channel_mul or both")
    public var contextFusions: [String] = ["channel_add"]
    @Key(
        "frozen_stages", in: -1...4,
        "-1 none; 0 the stem; k the stem and res2..res(k+1): fixed weights, running BN statistics")
    public var frozenStages = -1
    @Key("norm_eval", "every BatchNorm uses running statistics while training")
    public var normEval = false
    @Key("zero_init_residual", "start each block's last BatchNorm weight at zero")
    public var zeroInitResidual = false

    public enum InflateStyle: String, Sendable, CaseIterable {
        case t3x1x1 = "3x1x1", t3x3x3 = "3x3x3"
    }

    public init() {}

    /// Blocks per stage, and whether they are bottlenecks.
    public var architecture: (blocks: [Int], bottleneck: Bool)? {
        switch depth {
        case 18: ([2, 2, 2, 2], false)
        case 34: ([3, 4, 6, 3], false)
        case 50: ([3, 4, 6, 3], true)
        case 101: ([3, 4, 23, 3], true)
        case 152: ([3, 8, 36, 3], true)
        default: nil
        }
    }

    /// Problems that make the spec unbuildable, each with the config key it concerns (empty when
    /// valid).
    public func problems() -> [(key: String, message: String)] {
        guard let (blocks, _) = architecture else {
            return [("depth", "depth \(depth) is not one of 18, 34, 50, 101, 152")]
        }
        var found: [(key: String, message: String)] = []
        if baseChannels < 1 { found.append(("base_channels", "base_channels must be at least 1")) }
        if numClasses < 1 { found.append(("num_classes", "num_classes must be at least 1")) }
        if !(0..<1).contains(dropout) { found.append(("dropout", "dropout must be in [0, 1)")) }
        if conv1StrideT < 1 { found.append(("conv1_stride_t", "conv1_stride_t must be at least 1")) }
        if pool1StrideT < 1 { found.append(("pool1_stride_t", "pool1_stride_t must be at least 1")) }
        if [conv1Kernel.t, conv1Kernel.h, conv1Kernel.w].contains(where: { $0 < 1 }) {
            found.append(("conv1_kernel", "conv1_kernel must be positive"))
        }
        if !(-1...4).contains(frozenStages) {
            found.append(("frozen_stages", "frozen_stages must be between -1 and 4"))
        }
        if contextRatio <= 0 || contextRatio > 1 { found.append(("context_ratio", "context_ratio must be in (0, 1]")) }
        if contextFusions.isEmpty || !contextFusions.allSatisfy({ ["channel_add", "channel_mul"].contains($0) }) {
            found.append(("context_fusion", "context_fusion must list channel_add and/or channel_mul"))
        }
        for (name, pattern) in [("inflate", inflate), ("non_local", nonLocal), ("context", context)] {
            let expanded = expand(pattern)
            if expanded.count != 4 || zip(expanded, blocks).contains(where: { $0.count != $1 })
                || expanded.joined().contains(where: { $0 != 0 && $0 != 1 })
            {
                found.append(
                    (
                        name,
                        "\(name) needs 4 stages of 0/1 digits with \(blocks.map(String.init).joined(separator: ", ")) blocks for depth \(depth) (or one digit per stage)"
                    ))
            }
        }
        return found
    }

    /// `pattern` with each one-value stage repeated for every block of the stage.
    func expand(_ pattern: [[Int]]) -> [[Int]] {
        guard let (blocks, _) = architecture else { return pattern }
        return pattern.enumerated().map { i, stage in
            stage.count == 1 && i < blocks.count ? [Int](repeating: stage[0], count: blocks[i]) : stage
        }
    }

    /// The patterns with every stage at one value per block.
    public var inflatePerBlock: [[Int]] { expand(inflate) }
    public var nonLocalPerBlock: [[Int]] { expand(nonLocal) }
    public var contextPerBlock: [[Int]] { expand(context) }

    // MARK: Named models

    /// The named models, for `[model] name` and `--model`.
    public static let names = ["i3d_r50", "nl_i3d_r50", "gc_i3d_r50", "nl_i3d_r18_small", "nl_i3d_r50_tiny"]

    public static func named(_ name: String) -> ModelSpec? {
        var spec = ModelSpec()
        switch name {
        case "i3d_r50":  // mmaction2 configs/_base_/models/i3d_r50.py
            break
        case "nl_i3d_r50":  // + i3d_nl_*: five non-local blocks in res3 and res4
            spec.nonLocal = [[0, 0, 0], [0, 1, 0, 1], [0, 1, 0, 1, 0, 1], [0, 0, 0]]
        case "gc_i3d_r50":  // GCNet's placement: a context block in every block of res3 to res5
            spec.context = [[0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [1, 1, 1]]
        case "nl_i3d_r18_small":  // the demo's model: R18 at a quarter of the width, two non-local blocks
            spec.depth = 18
            spec.baseChannels = 16
            spec.conv1Kernel = Size3(3, 7, 7)
            spec.conv1StrideT = 1
            spec.pool1StrideT = 1
            spec.inflate = [[1], [1], [1], [1]]
            spec.nonLocal = [[0], [0, 1], [0, 1], [0]]
        case "nl_i3d_r50_tiny":  // nl_i3d_r50's structure at 1/16 of the width, for tests
            spec.baseChannels = 4
            spec.nonLocal = [[0, 0, 0], [0, 1, 0, 1], [0, 1, 0, 1, 0, 1], [0, 0, 0]]
        default:
            return nil
        }
        return spec
    }
}

extension Size3 {
    /// "T H W", each 1 to 99: a kernel as config files write it.
    @Sendable static func parse(_ text: String) throws -> Size3 {
        let v = try words(text, count: 3...3).map { try parseInt($0, in: 1...99) }
        return Size3(v[0], v[1], v[2])
    }
}
