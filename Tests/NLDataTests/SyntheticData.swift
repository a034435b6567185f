import Foundation
import NLData
import NLTestSupport
import NLTensor

/// The shared synthetic dataset (NLTestSupport's syntheticDatasetDirectory) as the loader tests
/// use it.
enum SyntheticData {
    static var root: String { syntheticDatasetDirectory }

    static func dataset(_ annotations: String = "train.csv") throws -> Dataset {
        try Annotations.load(
            format: .kineticsCSV, annotations: "\(root)/\(annotations)", root: root, classes: "\(root)/classes.txt")
    }

    /// The loader tests set each loader's own sampler.
    static let sampler = SampleFrames(clipLength: 8, frameInterval: 2)

    static let pipeline = ClipPipeline(
        sampler: sampler, resize: ShortEdgeResize(range: 56...72), crop: RandomCrop(size: 48),
        flip: RandomHorizontalFlip(),
        normalize: Normalize(mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375]))
}
