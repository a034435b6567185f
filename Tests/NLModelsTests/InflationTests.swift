import NLModels
import NLTestSupport
import Testing

/// I3D's "boring video" check: a clip whose frames are all one image gives the inflated 3D
/// network the 2D network's features for that image.
struct InflationTests {
    /// torchvision's key for one of ours in a network with no temporal extent.
    static func torchvisionKey(_ key: String) -> String {
        var k = key.replacingOccurrences(of: "backbone.", with: "")
        k = k.replacingOccurrences(of: "downsample.conv.", with: "downsample.0.").replacingOccurrences(of: "downsample.bn.", with: "downsample.1.")
        if k.hasPrefix("conv1.bn.") { return "bn1." + k.dropFirst("conv1.bn.".count) }
        if let r = k.range(of: #"conv(\d)\.bn\."#, options: .regularExpression) {
            let n = k[r].dropFirst(4).prefix(1)
            k.replaceSubrange(r, with: "bn\(n).")
        }
        return k.replacingOccurrences(of: ".conv.weight", with: ".weight")
    }

    @Test func boringVideoGivesTheTwoDimensionalFeatures() throws {
        var generator = SeededGenerator(seed: 31)
        // The 2D network: the same ResNet-50 with no temporal kernels, run on one frame.
        var spec2D = ModelSpec.named("i3d_r50")!
        spec2D.baseChannels = 4
        spec2D.conv1Kernel = Size3(1, 7, 7)
        (spec2D.conv1StrideT, spec2D.pool1StrideT, spec2D.withPool2) = (1, 1, false)
        spec2D.inflate = [[0], [0], [0], [0]]
        let net2D = Recognizer(spec: spec2D)
        randomizeParameters(net2D, using: &generator)
        var file2D = SafeTensors()
        for (key, entry) in net2D.state where key.hasPrefix("backbone.") {
            switch entry {
            case .parameter(let p):
                let t = p.inCheckpointLayout(p.value)
                file2D.set(Self.torchvisionKey(key), t.rank == 5 ? t.reshaped([t.shape[0], t.shape[1], t.shape[3], t.shape[4]]) : t)
            case .buffer(let b):
                for i in 0..<b.count { b.data[i] = key.hasSuffix("var") ? 0.5 + generator.uniform() : generator.normal() * 0.1 }
                file2D.set(Self.torchvisionKey(key), b)
            case .counter(let c): file2D.set(Self.torchvisionKey(key), int64s: [c.value], shape: [])
            }
        }
        file2D.set("fc.weight", Tensor(zeros: [10, 64]))
        file2D.set("fc.bias", Tensor(zeros: [10]))

        // The 3D network: i3d_r50's inflation (5x7x7 stem, 3x1x1 in alternate blocks).
        var spec3D = ModelSpec.named("i3d_r50")!
        spec3D.baseChannels = 4
        let net3D = Recognizer(spec: spec3D, seed: 5)
        let report = net3D.inflate(from: file2D)
        #expect(report.unused == ["fc.bias", "fc.weight"])
        #expect(report.mismatched.isEmpty)
        #expect(report.mapped.count == file2D.names.count - 2)
        #expect(report.notInitialized == ["cls_head.fc_cls.weight", "cls_head.fc_cls.bias"])

        let image = randomTensor([1, 1, 16, 16, 3], using: &generator)
        let features2D = net2D.backbone.forward(image, training: false).copy()  // (1, 1, 1, 1, C)
        let c = features2D.count
        let frames = 160
        let video = Tensor(zeros: [1, frames, 16, 16, 3])
        for t in 0..<frames { (video.data + t * 16 * 16 * 3).update(from: image.data, count: 16 * 16 * 3) }
        let features3D = net3D.backbone.forward(video, training: false)   // (1, 20, 1, 1, C)
        #expect(features3D.shape == [1, 20, 1, 1, c])
        // Zero padding in time makes positions near the clip's ends see zeros; the temporal
        // receptive field at res5 spans ~130 frames, so positions 8...11 of 20 lie inside.
        for t in 8...11 {
            let position = features3D.reshaped([20, c]).slice(t..<(t + 1))
            #expect(relativeError(position, features2D) < 1e-4, "position \(t)")
        }
        let edge = features3D.reshaped([20, c]).slice(0..<1)
        #expect(relativeError(edge, features2D) > 1e-3, "the first position sees the padding")
    }
}
