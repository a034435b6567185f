import NLLayers
import NLTensor

/// One row of `nlmodel summary`.
public struct LayerSummary: Sendable {
    public let name: String
    /// Channels-last (N, T, H, W, C).
    public let outputShape: [Int]
    /// Learned parameters (buffers such as running statistics are not counted).
    public let parameters: Int
    /// Multiply-adds of convolutions, linear layers and the non-local and context blocks' matrix
    /// products; normalisation, activations, pooling and softmax are not counted.
    public let multiplyAdds: Int
}

extension Recognizer {
    /// Why the network cannot take a clip of `clipShape` (N, T, H, W), or nil: a dimension below
    /// 1 or absurdly large, a layer whose output would be empty (as PyTorch, against the padded
    /// input: a 3x7x7 stem runs on clips of one frame), or, in training, a BatchNorm left with one value per channel (PyTorch: "Expected
    /// more than 1 value per channel when training"). Found from shapes alone, before any work.
    public func clipProblem(_ clipShape: [Int], training: Bool) -> String? {
        guard clipShape.count == 4, clipShape.allSatisfy({ $0 >= 1 }) else {
            return "every dimension of the clip \(clipShape) must be at least 1"
        }
        guard clipShape.allSatisfy({ $0 <= 1 << 16 }), clipShape.map(Double.init).reduce(1, *) <= Double(1 << 36) else {
            return "the clip \(clipShape) is too large (more than 2^36 pixels)"
        }
        let rows = summary(clipShape: clipShape + [3])
        if let empty = rows.first(where: { $0.outputShape.contains { $0 < 1 } }) {
            return "the clip \(clipShape) is too small for the network: \(empty.name)'s output would be empty"
        }
        if training,
            let single = rows.first(where: { $0.outputShape.count == 5 && $0.outputShape.dropLast().reduce(1, *) == 1 })
        {
            return
                "a batch of \(clipShape[0]) clip\(clipShape[0] == 1 ? "" : "s") of \(clipShape[1])x\(clipShape[2])x\(clipShape[3]) leaves one value per channel "
                + "after \(single.name), which BatchNorm cannot normalise in training (PyTorch: \"Expected more than 1 value per channel when training\"); "
                + "use a larger batch or crop"
        }
        return nil
    }

    /// The network's layers for a clip of `clipShape` (N, T, H, W, 3), computed from shapes alone:
    /// no tensor is allocated, so it is instant at any size.
    public func summary(clipShape: [Int]) -> [LayerSummary] {
        var rows: [LayerSummary] = []
        func count(_ layer: Layer) -> Int { layer.parameters.reduce(0) { $0 + $1.parameter.value.count } }
        func convolution(_ name: String, _ module: ConvModule, _ input: [Int]) -> [Int] {
            let out = module.conv.outputShape(for: input)
            let macs =
                out.dropLast().reduce(1, *) * module.conv.outputChannels * module.conv.inputChannels
                * module.conv.kernelSize.volume
            rows.append(LayerSummary(name: name, outputShape: out, parameters: count(module), multiplyAdds: macs))
            return out
        }
        func pool(_ name: String, _ pool: MaxPool3d, _ input: [Int]) -> [Int] {
            let out = pool.outputShape(for: input)
            rows.append(LayerSummary(name: name, outputShape: out, parameters: 0, multiplyAdds: 0))
            return out
        }
        var shape = convolution("backbone.conv1", backbone.conv1, clipShape)
        shape = pool("backbone.maxpool", backbone.maxpool, shape)
        for (i, blocks) in backbone.stages.enumerated() {
            for (j, block) in blocks.enumerated() {
                let name = "backbone.layer\(i + 1).\(j)"
                let input = shape
                for (k, module) in block.convs.enumerated() {
                    shape = convolution("\(name).conv\(k + 1)", module, shape)
                }
                if let context = block.context {
                    rows.append(
                        LayerSummary(
                            name: "\(name).context_block", outputShape: shape, parameters: count(context),
                            multiplyAdds: contextMultiplyAdds(context, shape)))
                }
                if let downsample = block.downsample { _ = convolution("\(name).downsample", downsample, input) }
                if let nonLocal = block.nonLocal {
                    rows.append(
                        LayerSummary(
                            name: "\(name).non_local_block", outputShape: shape, parameters: count(nonLocal),
                            multiplyAdds: nonLocalMultiplyAdds(nonLocal, shape)))
                }
            }
            if i == 0, let pool2 = backbone.pool2 { shape = pool("backbone.pool2", pool2, shape) }
        }
        let (n, features, classes) = (shape[0], shape[4], spec.numClasses)
        rows.append(
            LayerSummary(
                name: "cls_head.fc_cls", outputShape: [n, classes], parameters: count(head),
                multiplyAdds: n * features * classes))
        return rows
    }

    private func nonLocalMultiplyAdds(_ block: NonLocalBlock, _ shape: [Int]) -> Int {
        let (n, c, ci) = (shape[0], block.channels, block.innerChannels)
        let p = shape[1] * shape[2] * shape[3]
        let pp = block.subSample ? shape[1] * (shape[2] / 2) * (shape[3] / 2) : p
        let d = block.mode == .gaussian ? c : ci
        var macs = p * c * ci  // g
        if block.mode != .gaussian { macs += 2 * p * c * ci }  // theta, phi
        macs += block.mode == .concatenation ? (p + pp) * ci : p * pp * d  // pairwise scores
        macs += p * pp * ci + p * ci * c  // attention x g, conv_out
        return n * macs
    }

    private func contextMultiplyAdds(_ block: ContextBlock, _ shape: [Int]) -> Int {
        let (n, c, planes) = (shape[0], block.channels, block.planes)
        let p = shape[1] * shape[2] * shape[3]
        let transforms = [block.channelAdd, block.channelMul].compactMap { $0 }.count
        return n * ((block.convMask == nil ? 0 : 2 * p * c) + transforms * 2 * c * planes)
    }
}
