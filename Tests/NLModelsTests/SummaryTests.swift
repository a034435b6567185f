import NLModels
import Testing
import NLData
import NLLayers
import NLTensor
import NLTrain
import NLVideo

struct SummaryTests {
    @Test func nonLocalResNet50AtTheRecipeShape() {
        let model = Recognizer(spec: ModelSpec.named("nl_i3d_r50")!)
        let rows = model.summary(clipShape: [1, 32, 224, 224, 3])
        #expect(rows.reduce(0) { $0 + $1.parameters } == 35_397_840)
        #expect(rows.first { $0.name == "backbone.conv1" }!.outputShape == [1, 16, 112, 112, 64])
        #expect(rows.first { $0.name == "backbone.pool2" }!.outputShape == [1, 4, 56, 56, 256])
        #expect(rows.first { $0.name == "backbone.layer2.1.non_local_block" }!.outputShape == [1, 4, 28, 28, 512])
        #expect(rows.first { $0.name == "backbone.layer4.2.conv3" }!.outputShape == [1, 4, 7, 7, 2048])
        #expect(rows.filter { $0.name.hasSuffix("non_local_block") }.count == 5)
        // PyTorch's FlopCounterMode on the reference's forward at this shape (2 FLOPs a
        // multiply-add): 88,677,482,496 for embedded_gaussian, 83,446,333,440 for gaussian.
        #expect(2 * rows.reduce(0) { $0 + $1.multiplyAdds } == 88_677_482_496)
        var gaussian = ModelSpec.named("nl_i3d_r50")!
        gaussian.nonLocalMode = .gaussian
        let gaussianRows = Recognizer(spec: gaussian).summary(clipShape: [1, 32, 224, 224, 3])
        #expect(2 * gaussianRows.reduce(0) { $0 + $1.multiplyAdds } == 83_446_333_440)
    }
}
