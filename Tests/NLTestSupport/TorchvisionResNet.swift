import NLModels
import NLTensor
import NLData
import NLDistributed
import NLLayers
import NLTrain
import NLVideo

/// torchvision's key for one of ours in a network with no temporal extent.
public func torchvisionKey(_ key: String) -> String {
    var k = key.replacingOccurrences(of: "backbone.", with: "")
    k = k.replacingOccurrences(of: "downsample.conv.", with: "downsample.0.").replacingOccurrences(
        of: "downsample.bn.", with: "downsample.1.")
    if k.hasPrefix("conv1.bn.") { return "bn1." + k.dropFirst("conv1.bn.".count) }
    if let r = k.range(of: #"conv(\d)\.bn\."#, options: .regularExpression) {
        let n = k[r].dropFirst(4).prefix(1)
        k.replaceSubrange(r, with: "bn\(n).")
    }
    return k.replacingOccurrences(of: ".conv.weight", with: ".weight")
}

/// A 2D ResNet-50 as torchvision saves it (its key names, [out, in, kH, kW] kernels, a 1000-class
/// fc), built as our network with no temporal extent, with random weights and statistics: what
/// `nlmodel inflate` reads. Also returns that 2D network, to run it.
public func torchvisionResNet50(
    baseChannels: Int = 64, using generator: inout SeededGenerator
) -> (file: SafeTensors, network: Recognizer) {
    var spec = ModelSpec.named("i3d_r50")!
    spec.baseChannels = baseChannels
    spec.conv1Kernel = Size3(1, 7, 7)
    (spec.conv1StrideT, spec.pool1StrideT, spec.withPool2) = (1, 1, false)
    spec.inflate = [[0], [0], [0], [0]]
    let network = Recognizer(spec: spec)
    randomizeParameters(network, using: &generator)
    var file = SafeTensors()
    for (key, entry) in network.state where key.hasPrefix("backbone.") {
        switch entry {
        case .parameter(let p):
            let t = p.inCheckpointLayout(p.value)
            file.set(
                torchvisionKey(key), t.rank == 5 ? t.reshaped([t.shape[0], t.shape[1], t.shape[3], t.shape[4]]) : t)
        case .buffer(let b):
            for i in 0..<b.count {
                b.data[i] = key.hasSuffix("var") ? 0.5 + generator.uniform() : generator.normal() * 0.1
            }
            file.set(torchvisionKey(key), b)
        case .counter(let c): file.set(torchvisionKey(key), int64s: [c.value], shape: [])
        }
    }
    file.set("fc.weight", Tensor(zeros: [1000, 32 * baseChannels]))
    file.set("fc.bias", Tensor(zeros: [1000]))
    return (file, network)
}
