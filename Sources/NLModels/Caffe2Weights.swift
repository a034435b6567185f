import Foundation
import NLTensor

/// The weights of the paper's own models (facebookresearch/video-nonlocal-net: Caffe2 blob files,
/// a pickled {"blobs": {name: numpy array}}) under the project's names, which are mmaction2's.
/// Blob names map as PySlowFast maps the same files (slowfast/utils/c2_model_loading.py), its
/// module names then put as mmaction2's:
///
///     conv1_w, res_conv1_bn_{s,b,rm,riv}      backbone.conv1.conv.weight, backbone.conv1.bn.*
///     res{S}_{i}_branch2{a,b,c}_w, _bn_*       backbone.layer{S-1}.{i}.conv{1,2,3}.conv/bn
///     res{S}_{i}_branch1_w, _bn_*              backbone.layer{S-1}.{i}.downsample.conv/bn
///     nonlocal_conv{S}_{i}_{theta,phi,g}_*     backbone.layer{S-1}.{i}.non_local_block.{theta,phi.0,g.0}.conv.*
///     nonlocal_conv{S}_{i}_out_*, _bn_*        backbone.layer{S-1}.{i}.non_local_block.conv_out.conv/bn
///     pred_{w,b}                               cls_head.fc_cls.*
///
/// with BatchNorm's s, b, rm, riv as weight, bias, running_mean, running_var. The non-local
/// output convolution's bias (mmaction2's has none: a BatchNorm follows) is folded into that
/// BatchNorm's running mean, which gives the same outputs; a BatchNorm stored as scale and bias
/// alone (Caffe2's AffineChannel) gets mean 0 and variance 1 - eps, which also does. Training state
/// (momentum, learning rate, iteration) is left out.
public enum Caffe2Weights {
    /// `blobs` (the arrays of a Caffe2 blob file) as a state dict, and the blob names left out.
    public static func stateDict(
        blobs: [(name: String, entry: SafeTensors.Entry)], epsilon: Float = 1e-5
    ) throws
        -> (weights: SafeTensors, leftOut: [String])
    {
        var weights = SafeTensors(), leftOut: [String] = [], norms = Set<String>()
        var outBiases: [String: SafeTensors.Entry] = [:]
        for (name, entry) in blobs {
            guard let (module, field) = mmaction2Name(name) else {
                leftOut.append(name)
                continue
            }
            if field == "out_bias" {
                outBiases[module] = entry
                continue
            }
            if module.hasSuffix(".bn") { norms.insert(module) }
            weights.entries["\(module).\(field)"] = entry
        }
        for module in norms.sorted() {
            guard let scale = weights.entries["\(module).weight"] else { continue }
            let channels = scale.shape.reduce(1, *)
            if weights.entries["\(module).running_mean"] == nil {
                weights.set("\(module).running_mean", Tensor(zeros: [channels]))
                weights.set("\(module).running_var", Tensor(shape: [channels], repeating: 1 - epsilon))
            }
            weights.set("\(module).num_batches_tracked", int64s: [0], shape: [])
        }
        // conv_out's bias b, before a BatchNorm: BN(x + b) is BN(x) with running_mean - b.
        for (module, bias) in outBiases {
            let norm = String(module.dropLast(".conv".count)) + ".bn"
            var file = SafeTensors()
            file.entries["bias"] = bias
            guard let mean = weights.tensor("\(norm).running_mean"), let b = file.tensor("bias"), b.count == mean.count
            else { throw Caffe2Error("\(module): an output bias without a BatchNorm of its size after it") }
            weights.set("\(norm).running_mean", Tensor(shape: mean.shape, values: zip(mean.buffer, b.buffer).map(-)))
        }
        return (weights, leftOut)
    }

    /// The state-dict key of a blob ("out_bias" as the field of a non-local block's output
    /// convolution bias, which has no key), nil for training state and unknown blobs.
    public static func mmaction2Name(_ blob: String) -> (module: String, field: String)? {
        var parts = blob.split(separator: "_", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, !blob.contains("momentum") else { return nil }
        let normFields = ["s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"]
        if parts.count >= 3, parts[parts.count - 2] == "bn", let field = normFields[parts.last!] {
            parts.removeLast(2)
            return owner(parts).map { ("\($0).bn", field) }
        }
        guard let field = ["w": "weight", "b": "bias"][parts.removeLast()], let owner = owner(parts) else { return nil }
        if owner == "cls_head.fc_cls" { return (owner, field) }
        if owner.hasSuffix(".conv_out"), field == "bias" { return ("\(owner).conv", "out_bias") }
        return ("\(owner).conv", field)
    }

    /// The mmaction2 module (a ConvModule, or the classifier) a blob name's leading parts name.
    static func owner(_ parts: [String]) -> String? {
        func number(_ s: String, after prefix: String) -> Int? {
            s.hasPrefix(prefix) ? Int(s.dropFirst(prefix.count)) : nil
        }
        switch parts.count {
        case 1 where parts[0] == "conv1", 2 where parts == ["res", "conv1"]:
            return "backbone.conv1"
        case 1 where parts[0] == "pred":
            return "cls_head.fc_cls"
        case 3:  // res{S}_{i}_branch{1,2a,2b,2c}, or nonlocal_conv{S}_{i} (its BatchNorm)
            if parts[0] == "nonlocal", let stage = number(parts[1], after: "conv"), let block = Int(parts[2]) {
                return "backbone.layer\(stage - 1).\(block).non_local_block.conv_out"
            }
            let branches = ["branch2a": "conv1", "branch2b": "conv2", "branch2c": "conv3", "branch1": "downsample"]
            guard let stage = number(parts[0], after: "res"), let block = Int(parts[1]), let conv = branches[parts[2]]
            else { return nil }
            return "backbone.layer\(stage - 1).\(block).\(conv)"
        case 4:  // nonlocal_conv{S}_{i}_{theta,phi,g,out}
            let inner = ["theta": "theta", "phi": "phi.0", "g": "g.0", "out": "conv_out"]
            guard parts[0] == "nonlocal", let stage = number(parts[1], after: "conv"), let block = Int(parts[2]),
                let module = inner[parts[3]]
            else { return nil }
            return "backbone.layer\(stage - 1).\(block).non_local_block.\(module)"
        default:
            return nil
        }
    }
}

public struct Caffe2Error: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
