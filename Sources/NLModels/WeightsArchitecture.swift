import NLTensor

/// What the keys and shapes of a state dict say of the network that saved it, in the [model]
/// config keys' terms: weights from another framework carry no config, and when they do not fit
/// the one given, this says which settings they need. The pairwise function of embedded-Gaussian
/// and dot-product blocks has the same keys, so it is named as either.
public enum WeightsArchitecture {
    public static func describe(_ weights: SafeTensors) -> String {
        let names = weights.names
        func blocks(_ layer: Int) -> [Int] {
            let prefix = "backbone.layer\(layer)."
            return Set(
                names.filter { $0.hasPrefix(prefix) }.compactMap {
                    Int($0.dropFirst(prefix.count).prefix { $0 != "." })
                }
            )
            .sorted()
        }
        let stages = (1...4).map(blocks)
        guard stages.allSatisfy({ !$0.isEmpty }) else {
            return "no ResNet3d backbone (no backbone.layer1 to layer4 keys)"
        }
        let bottleneck = names.contains { $0.hasPrefix("backbone.layer1.0.conv3.") }
        let counts = stages.map(\.count)
        var parts: [String] = []
        let depth = [18, 34, 50, 101, 152].first { d in
            var spec = ModelSpec()
            spec.depth = d
            return spec.architecture.map { $0.blocks == counts && $0.bottleneck == bottleneck } ?? false
        }
        parts.append(
            (depth.map { "depth \($0)" } ?? "an unknown depth")
                + " (\(counts.map(String.init).joined(separator: "-")) \(bottleneck ? "bottleneck" : "basic") blocks)")
        if let stem = weights.entries["backbone.conv1.conv.weight"], stem.shape.count == 5 {
            parts.append(
                "base_channels \(stem.shape[0]), conv1_kernel \(stem.shape[2...].map(String.init).joined(separator: " "))"
            )
        }
        func pattern(_ has: (String) -> Bool) -> String {
            stages.enumerated().map { s, blocks in
                blocks.map { has("backbone.layer\(s + 1).\($0).") ? "1" : "0" }.joined()
            }.joined(separator: " ")
        }
        func temporal(_ key: String) -> Int { weights.entries[key].map { $0.shape.count == 5 ? $0.shape[2] : 1 } ?? 1 }
        parts.append(
            "inflate \(pattern { temporal($0 + "conv1.conv.weight") > 1 || temporal($0 + "conv2.conv.weight") > 1 })")
        let nonLocal = pattern { block in names.contains { $0.hasPrefix(block + "non_local_block.") } }
        if nonLocal.contains("1") {
            let mode =
                names.contains { $0.contains(".non_local_block.concat_project.") }
                ? "concatenation"
                : names.contains { $0.contains(".non_local_block.theta.") }
                    ? "embedded_gaussian or dot_product: their keys are the same" : "gaussian"
            parts.append("non_local \(nonLocal) (\(mode))")
        }
        let context = pattern { block in names.contains { $0.hasPrefix(block + "context_block.") } }
        if context.contains("1") { parts.append("context \(context)") }
        if let head = weights.entries["cls_head.fc_cls.weight"], head.shape.count == 2 {
            parts.append("num_classes \(head.shape[0])")
        }
        return parts.joined(separator: ", ")
    }
}
