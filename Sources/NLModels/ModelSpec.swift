import NLLayers
import NLTensor

/// Everything that defines a network, with mmaction2's names and defaults (ResNet3d, I3DHead).
/// Named presets give the paper's models; any field can then be changed.
public struct ModelSpec: Equatable, Sendable {
    /// 18 and 34 use basic blocks, 50, 101 and 152 bottlenecks.
    public var depth = 50
    /// Channels of the stem; stage i has base * 2^i (times 4 for bottlenecks) channels.
    public var baseChannels = 64
    public var numClasses = 400
    /// Dropout before the classifier.
    public var dropout: Float = 0.5
    public var conv1Kernel = Size3(5, 7, 7)
    public var conv1StrideT = 2
    public var pool1StrideT = 2
    /// The (2, 1, 1) max pool after res2.
    public var withPool2 = true
    /// Per stage, per block: 1 inflates the block's first conv to 3x1x1 ("3x1x1" style) or its
    /// second to 3x3x3 ("3x3x3" style); basic blocks inflate both to 3x3x3. In this and the other
    /// patterns a stage given one value applies it to all its blocks, as mmaction2 does.
    public var inflate: [[Int]] = [[1, 1, 1], [1, 0, 1, 0], [1, 0, 1, 0, 1, 0], [0, 1, 0]]
    public var inflateStyle: InflateStyle = .t3x1x1
    /// Per stage, per block: 1 adds a non-local block after the block.
    public var nonLocal: [[Int]] = [[0], [0], [0], [0]]
    public var nonLocalMode: NonLocalBlock.Mode = .embeddedGaussian
    public var nonLocalUseScale = false
    public var nonLocalSubSample = true
    /// Per stage, per block: 1 adds a GCNet context block after the block's last conv.
    public var context: [[Int]] = [[0], [0], [0], [0]]
    public var contextRatio = 1.0 / 16
    public var contextPooling: ContextBlock.Pooling = .attention
    public var contextFusions: [String] = ["channel_add"]
    /// Stages whose parameters are fixed and whose BatchNorms use running statistics: -1 none,
    /// 0 the stem, k the stem and res2..res(k+1).
    public var frozenStages = -1
    /// Every BatchNorm uses running statistics while training (mmaction2's norm_eval).
    public var normEval = false
    /// Start each block's last BatchNorm at zero, so every block starts as the identity.
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
