import NLModels
import NLTestSupport
import Testing
import NLData
import NLLayers
import NLTensor
import NLTrain
import NLVideo

/// I3D's "boring video" check: a clip whose frames are all one image gives the inflated 3D
/// network the 2D network's features for that image.
struct InflationTests {
    @Test func boringVideoGivesTheTwoDimensionalFeatures() throws {
        var generator = SeededGenerator(seed: 31)
        // The 2D network: the same ResNet-50 with no temporal kernels, run on one frame.
        let (file2D, net2D) = torchvisionResNet50(baseChannels: 4, using: &generator)

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
        let features3D = net3D.backbone.forward(video, training: false)  // (1, 20, 1, 1, C)
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
