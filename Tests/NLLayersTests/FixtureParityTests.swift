import Foundation
import NLLayers
import NLTestSupport
import Testing
import NLTensor

/// Every layer against PyTorch (fixtures made by scripts/fixtures/make_layer_fixtures.py): forward output,
/// input gradient, every parameter gradient and the buffers after the step, to 1e-4 relative.
struct FixtureParityTests {
    static let directory = fixtureDirectory()
    static let layerCases = fixtureNames(in: directory, prefix: "").filter {
        !["softmax_cross_entropy", "loss"].contains($0)
    }
    static let tolerance: Float = 1e-4
    static let zeroTolerance: Float = 1e-3

    @Test(arguments: layerCases)
    func matchesPyTorch(_ name: String) throws {
        let file = try SafeTensors(contentsOf: "\(Self.directory)/\(name).safetensors")
        let layer = makeLayer(file.metadata)
        #expect(loadState(layer, from: file) == [], "state_dict keys and shapes")
        let training = file.metadata["train"] == "1"

        let y = layer.forward(toChannelsLast(file.tensor("input")!), training: training)
        expectClose(name, "output", y, toChannelsLast(file.tensor("output")!))
        // Buffers after the step (BatchNorm's running statistics) and counters.
        for (key, entry) in layer.state {
            guard file.entries["after.\(key)"] != nil else { continue }
            switch entry {
            case .buffer(let b): expectClose(name, "after.\(key)", b, file.tensor("after.\(key)")!)
            case .counter(let c): #expect(c.value == file.int64s("after.\(key)")!.first!, "\(key)")
            case .parameter: Issue.record("parameter \(key) listed among buffers")
            }
        }

        layer.zeroGradients()
        let dx = layer.backward(toChannelsLast(file.tensor("grad_output")!))
        expectClose(name, "grad_input", dx, toChannelsLast(file.tensor("grad_input")!))
        for (key, p) in layer.parameters {
            expectClose(name, "grad.\(key)", p.inCheckpointLayout(p.gradient), file.tensor("grad.\(key)")!)
        }
    }

    /// Frozen BatchNorm (norm_eval) trains with running statistics: the same forward and
    /// gradients as PyTorch's eval mode, and the running statistics stay as they were.
    @Test func frozenBatchNormMatchesEvalMode() throws {
        let file = try SafeTensors(contentsOf: "\(Self.directory)/batchnorm3d_eval.safetensors")
        let bn = makeLayer(file.metadata) as! BatchNorm3d
        _ = loadState(bn, from: file)
        bn.frozen = true
        let before = bn.runningMean.array
        let y = bn.forward(toChannelsLast(file.tensor("input")!), training: true)
        expectClose("batchnorm3d_frozen", "output", y, toChannelsLast(file.tensor("output")!))
        let dx = bn.backward(toChannelsLast(file.tensor("grad_output")!))
        expectClose("batchnorm3d_frozen", "grad_input", dx, toChannelsLast(file.tensor("grad_input")!))
        expectClose("batchnorm3d_frozen", "grad.weight", bn.weight.gradient, file.tensor("grad.weight")!)
        #expect(bn.runningMean.array == before && bn.batchesTracked.value == 0)
    }

    @Test func softmaxCrossEntropyMatchesPyTorch() throws {
        let file = try SafeTensors(contentsOf: "\(Self.directory)/softmax_cross_entropy.safetensors")
        let labels = file.int64s("labels")!.map { Int($0) }
        let (loss, gradient) = SoftmaxCrossEntropy.lossAndGradient(logits: file.tensor("input")!, labels: labels)
        expectClose("softmax_cross_entropy", "loss", Tensor(shape: [1], values: [loss]), file.tensor("output")!)
        expectClose("softmax_cross_entropy", "grad_input", gradient, file.tensor("grad_input")!)
    }

    func expectClose(
        _ name: String, _ quantity: String, _ actual: Tensor, _ expected: Tensor,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard actual.shape == expected.shape else {
            Issue.record(
                "\(name) \(quantity): shape \(actual.shape), expected \(expected.shape)", sourceLocation: sourceLocation
            )
            return
        }
        let comparison = Comparison(actual, expected)
        report(name, quantity, comparison)
        #expect(
            comparison.passes(tolerance: Self.tolerance, zeroTolerance: Self.zeroTolerance),
            "\(name) \(quantity): \(comparison.label)", sourceLocation: sourceLocation)
    }
}

/// Builds the layer a fixture's metadata describes.
func makeLayer(_ settings: [String: String]) -> Layer {
    func int(_ key: String) -> Int { Int(settings[key]!)! }
    func size(_ key: String) -> Size3 {
        let v = settings[key]!.split(separator: " ").map { Int($0)! }
        return Size3(v[0], v[1], v[2])
    }
    switch settings["layer"]! {
    case "conv3d":
        return Conv3d(
            inputChannels: int("inputs"), outputChannels: int("outputs"), kernelSize: size("kernel"),
            stride: size("stride"), padding: size("padding"), bias: int("bias") == 1)
    case "batchnorm3d": return BatchNorm3d(channels: int("channels"))
    case "relu": return ReLU()
    case "maxpool3d": return MaxPool3d(kernelSize: size("kernel"), stride: size("stride"), padding: size("padding"))
    case "global_average_pool": return GlobalAveragePool()
    case "linear": return Linear(inputFeatures: int("inputs"), outputFeatures: int("outputs"))
    case "nonlocal":
        return NonLocalBlock(
            channels: int("channels"), mode: NonLocalBlock.Mode(rawValue: settings["mode"]!)!,
            useScale: int("use_scale") == 1, subSample: int("sub_sample") == 1)
    case "context":
        let fusions = settings["fusions"]!.split(separator: " ")
        return ContextBlock(
            channels: int("channels"), ratio: Double(settings["ratio"]!)!,
            pooling: ContextBlock.Pooling(rawValue: settings["pooling"]!)!,
            channelAdd: fusions.contains("channel_add"), channelMul: fusions.contains("channel_mul"))
    case let other: fatalError("no layer \(other)")
    }
}
