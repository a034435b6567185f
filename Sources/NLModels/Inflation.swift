import NLLayers
import NLTensor

/// What inflating a 2D ResNet into the 3D network mapped.
public struct InflationReport: Sendable {
    /// (2D key, 3D key) pairs that were copied or inflated.
    public var mapped: [(from: String, to: String)] = []
    /// 2D keys that found no place (the 2D classifier, for one).
    public var unused: [String] = []
    /// 3D keys left at their initialisation (non-local and context blocks, the head).
    public var notInitialized: [String] = []
    /// 2D keys whose shapes did not fit, with both shapes.
    public var mismatched: [String] = []
}

extension Recognizer {
    /// Copies a 2D ImageNet ResNet with torchvision's key names (conv1.weight, bn1.*,
    /// layer1.0.conv1.weight, layer1.0.bn1.*, layer1.0.downsample.0.weight, ...) into this network,
    /// as mmaction2's inflate_weights: each 2D kernel is repeated along time and divided by the
    /// temporal kernel size, so a clip of identical frames gives the 2D network's response; BatchNorm
    /// is copied. Non-local and context blocks and the head keep their initialisation.
    @discardableResult
    public func inflate(from file: SafeTensors) -> InflationReport {
        var report = InflationReport()
        var used = Set<String>()
        let modules = backbone.namedDescendants.compactMap { entry -> (String, ConvModule)? in
            guard let module = entry.layer as? ConvModule,
                !entry.name.contains("non_local_block"), !entry.name.contains("context_block")
            else { return nil }
            return (entry.name, module)
        }
        for (name, module) in modules {
            // layerX.Y.downsample.{conv,bn} <- downsample.{0,1}; layerX.Y.convN.{conv,bn} <- convN, bnN
            let isShortcut = name.hasSuffix("downsample")
            let conv2D = isShortcut ? name + ".0" : name
            let norm2D = isShortcut ? name + ".1" : name.replacingOccurrences(of: "conv", with: "bn")
            if let weight = file.tensor(conv2D + ".weight") {
                let p = module.conv.weight, target = p.checkpointShape  // (out, in, kT, kH, kW)
                if weight.shape == [target[0], target[1], target[3], target[4]] {
                    p.load(checkpoint: repeatedAlongTime(weight, times: target[2]))
                    report.mapped.append((conv2D + ".weight", "backbone.\(name).conv.weight"))
                    used.insert(conv2D + ".weight")
                } else {
                    report.mismatched.append("\(conv2D).weight \(weight.shape) vs \(target)")
                }
            }
            if let norm = module.norm {
                let copied = norm.load(from: file, prefix: norm2D + ".")
                for key in copied.loaded {
                    report.mapped.append((key, "backbone.\(name).bn.\(key.dropFirst(norm2D.count + 1))"))
                    used.insert(key)
                }
                report.mismatched += copied.mismatched
            }
        }
        let mappedTargets = Set(report.mapped.map(\.to))
        report.unused = file.names.filter { !used.contains($0) }
        report.notInitialized = state.map(\.name).filter { !mappedTargets.contains($0) }
        return report
    }
}

/// (out, in, kH, kW) to (out, in, kT, kH, kW): the kernel repeated kT times, divided by kT.
func repeatedAlongTime(_ weight: Tensor, times kT: Int) -> Tensor {
    let (out, cin, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
    let result = Tensor(zeros: [out, cin, kT, kh, kw])
    let plane = kh * kw
    for oc in 0..<(out * cin) {
        for t in 0..<kT {
            for i in 0..<plane { result.data[(oc * kT + t) * plane + i] = weight.data[oc * plane + i] / Float(kT) }
        }
    }
    return result
}
