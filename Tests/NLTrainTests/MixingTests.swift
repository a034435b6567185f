import Foundation
import NLTensor
import NLTestSupport
import NLTrain
import Testing

/// Mixup and cutmix as PySlowFast's MixUp makes them (the formulas of slowfast/datasets/mixup.py
/// worked on small clips), its draws' distribution, and the class weights of the loss.
struct MixingTests {
    /// Three clips (N, T, H, W, C) = (3, 2, 4, 5, 3) of distinct values.
    let clips = Tensor(shape: [3, 2, 4, 5, 3], values: (0..<360).map { Float($0) })

    @Test func mixupBlendsEachClipWithTheFlippedBatch() {
        let mixed = Mixing.mix(clips, lambda: 0.3, box: nil)
        for i in 0..<3 {
            for j in 0..<120 {
                let expected = 0.3 * clips[i * 120 + j] + 0.7 * clips[(2 - i) * 120 + j]
                #expect(abs(mixed[i * 120 + j] - expected) < 1e-4)
            }
        }
    }

    @Test func cutmixTakesTheBoxOfEveryFrameFromTheFlippedClip() {
        let box = Mixing.Box(top: 1, bottom: 3, left: 2, right: 5)
        let mixed = Mixing.mix(clips, lambda: 0, box: box)
        for i in 0..<3 {
            for t in 0..<2 {
                for y in 0..<4 {
                    for x in 0..<5 {
                        for c in 0..<3 {
                            let at = (((t * 4) + y) * 5 + x) * 3 + c
                            let inside = (1..<3).contains(y) && (2..<5).contains(x)
                            #expect(mixed[i * 120 + at] == clips[(inside ? 2 - i : i) * 120 + at])
                        }
                    }
                }
            }
        }
    }

    /// lambda ~ Beta(0.8, 0.8) for mixup (mean 1/2, variance 0.0962); cutmix's lambda is the share
    /// of the frame its box leaves; mix_prob and switch_prob as often as they say.
    @Test func drawsAreDistributedAsPySlowFasts() {
        var generator = SeededGenerator(seed: 3)
        var mixing = Mixing()
        mixing.mixupAlpha = 0.8
        let lambdas = (0..<20000).map { _ in mixing.draw(height: 56, width: 56, using: &generator).lambda }
        let mean = lambdas.reduce(0, +) / 20000
        let variance = lambdas.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 20000
        #expect(abs(mean - 0.5) < 0.01 && abs(variance - 0.64 / (2.56 * 2.6)) < 0.004, "\(mean) \(variance)")

        (mixing.cutmixAlpha, mixing.probability, mixing.switchProbability) = (1, 0.4, 0.25)
        var (unmixed, cut) = (0, 0)
        for _ in 0..<20000 {
            let (lambda, box) = mixing.draw(height: 56, width: 40, using: &generator)
            if lambda == 1 && box == nil { unmixed += 1 }
            if let box {
                cut += 1
                #expect(abs(lambda - (1 - Double(box.area) / (56 * 40))) < 1e-12)
                #expect(box.top >= 0 && box.bottom <= 56 && box.left >= 0 && box.right <= 40)
            }
        }
        #expect(abs(Double(unmixed) / 20000 - 0.6) < 0.02 && abs(Double(cut) / 8000 - 0.25) < 0.03, "\(unmixed) \(cut)")
    }

    @Test func classWeights() {
        let counts = [10, 30, 60, 0]
        #expect(ClassWeights.uniform.weights(counts: counts).isEmpty)
        #expect(ClassWeights.given([1, 2, 3, 4]).weights(counts: counts) == [1, 2, 3, 4])
        let balanced = ClassWeights.balanced.weights(counts: counts)
        for (weight, expected) in zip(balanced, [100.0 / 30, 100.0 / 90, 100.0 / 180, 0]) {
            #expect(abs(Double(weight) - expected) < 1e-5)
        }
        // The config's words: balanced alone, or a number per class.
        let configured = try? Config(path: nil, overrides: ["model.num_classes=2", "train.class_weights=0.5 2"])
        #expect(configured?.train.classWeights == .given([0.5, 2]))
        let problem = #expect(throws: ConfigError.self) {
            try Config(path: nil, overrides: ["train.class_weights=balanced extra"])
        }
        #expect(
            problem?.message == "train.class_weights: balanced stands alone; give balanced, or one number per class")
    }
}
