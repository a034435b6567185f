import Foundation
import NLLayers
import NLTensor
import NLTestSupport
import Testing

/// Cross-entropy with label smoothing, class weights and mixed targets against PyTorch
/// (scripts/fixtures/make_loss_fixtures.py: F.cross_entropy(weight=, label_smoothing=), and
/// PySlowFast's mixup targets with its soft-target loss), loss and gradient.
struct LossTests {
    let fixture = try! SafeTensors(contentsOf: fixtureDirectory() + "/loss.safetensors")

    struct Settings: Decodable {
        let smoothing: Float, weights: [Float]?, lam: Float?
    }

    @Test(arguments: ["plain", "smoothed", "weighted", "smoothed_weighted", "mixed_smoothed", "mixed"])
    func crossEntropyMatchesPyTorch(_ name: String) throws {
        let file = fixture
        let settings = try JSONDecoder().decode(Settings.self, from: Data(file.metadata[name]!.utf8))
        let labels = file.int64s("\(name).labels")!.map(Int.init)
        var targets = SoftmaxCrossEntropy.Targets(
            labels: labels, smoothing: settings.smoothing, classWeights: settings.weights ?? [])
        if let lambda = settings.lam { targets = targets.mixed(lambda: lambda) }
        let (loss, gradient) = SoftmaxCrossEntropy.lossAndGradient(
            logits: file.tensor("\(name).logits")!, targets: targets)
        let expected = file.tensor("\(name).loss")![0]
        #expect(abs(loss - expected) <= 1e-6 * max(1, abs(expected)), "\(name): \(loss) vs \(expected)")
        #expect(relativeError(gradient, file.tensor("\(name).grad")!) < 1e-6, "\(name)")
    }

    /// The gradient against central differences of the loss: hard labels, and smoothed, weighted
    /// and mixed targets.
    @Test(arguments: [false, true])
    func gradientIsTheLossSlope(soft: Bool) {
        var generator = SeededGenerator(seed: 27)
        let logits = randomTensor([4, 5], std: 2, using: &generator)
        let hard = SoftmaxCrossEntropy.Targets(labels: [4, 0, 2, 2])
        let targets =
            soft
            ? SoftmaxCrossEntropy.Targets(labels: [4, 0, 2, 2], smoothing: 0.1, classWeights: [1, 2, 0.5, 1, 3])
                .mixed(lambda: 0.7) : hard
        let analytic = SoftmaxCrossEntropy.lossAndGradient(logits: logits, targets: targets).gradient
        for i in 0..<logits.count {
            let saved = logits.data[i]
            logits.data[i] = saved + 1e-2
            let plus = SoftmaxCrossEntropy.lossAndGradient(logits: logits, targets: targets).loss
            logits.data[i] = saved - 1e-2
            let minus = SoftmaxCrossEntropy.lossAndGradient(logits: logits, targets: targets).loss
            logits.data[i] = saved
            #expect(abs((plus - minus) / 2e-2 - analytic.data[i]) < 1e-3)
        }
    }
}
