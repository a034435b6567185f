import Foundation
import NLKeys
import NLLayers
import NLTensor

/// Mixup and cutmix on clips, as PySlowFast's MixUp (slowfast/datasets/mixup.py) does them to a
/// batch: with probability `probability` the batch is mixed with itself flipped (clip i with clip
/// N-1-i), by mixup (every pixel: lambda x_i + (1 - lambda) x_(N-1-i)) or by cutmix (a box of
/// every frame taken from the flipped clip, lambda then corrected to the area left), cutmix
/// chosen with `switchProbability` when both are on; lambda ~ Beta(alpha, alpha). The targets mix
/// by the same lambda (SoftmaxCrossEntropy.Targets.mixed).
public struct Mixing: Sendable {
    @Key(
        "mixup_alpha", in: 0...100,
        "mixup of each micro-batch with itself flipped, lambda ~ Beta(alpha, alpha) (0: off; "
            + "PySlowFast's MIXUP.ALPHA 0.8)")
    public var mixupAlpha = 0.0
    @Key(
        "cutmix_alpha", in: 0...100,
        "cutmix: a box of every frame from the flipped micro-batch, lambda ~ Beta(alpha, alpha) "
            + "(0: off; PySlowFast's MIXUP.CUTMIX_ALPHA 1.0)")
    public var cutmixAlpha = 0.0
    @Key(
        "mix_prob", in: 0...1,
        "probability that a micro-batch is mixed when mixup or cutmix is on (PySlowFast's MIXUP.PROB)")
    public var probability = 1.0
    @Key(
        "mix_switch_prob", in: 0...1,
        "with both on: probability of cutmix rather than mixup (PySlowFast's MIXUP.SWITCH_PROB)")
    public var switchProbability = 0.5

    public init() {}

    public var isOn: Bool { (mixupAlpha > 0 || cutmixAlpha > 0) && probability > 0 }

    /// A box of the frame, rows top..<bottom and columns left..<right.
    public struct Box: Sendable, Equatable {
        public let top: Int, bottom: Int, left: Int, right: Int
        public var area: Int { (bottom - top) * (right - left) }

        public init(top: Int, bottom: Int, left: Int, right: Int) {
            (self.top, self.bottom, self.left, self.right) = (top, bottom, left, right)
        }
    }

    /// What one batch gets: lambda (1: left as it is) and cutmix's box, as PySlowFast's
    /// _get_mixup_params and rand_bbox draw them for frames of `height` x `width`.
    public func draw(height: Int, width: Int, using generator: inout SeededGenerator) -> (lambda: Double, box: Box?) {
        guard isOn, Double.random(in: 0..<1, using: &generator) < probability else { return (1, nil) }
        let cutmix =
            mixupAlpha > 0 && cutmixAlpha > 0
            ? Double.random(in: 0..<1, using: &generator) < switchProbability : cutmixAlpha > 0
        let lambda = Self.beta(cutmix ? cutmixAlpha : mixupAlpha, using: &generator)
        guard cutmix else { return (lambda, nil) }
        let ratio = (1 - lambda).squareRoot()
        let (cutH, cutW) = (Int(Double(height) * ratio), Int(Double(width) * ratio))
        let (cy, cx) = (Int.random(in: 0..<height, using: &generator), Int.random(in: 0..<width, using: &generator))
        let box = Box(
            top: min(max(cy - cutH / 2, 0), height), bottom: min(max(cy + cutH / 2, 0), height),
            left: min(max(cx - cutW / 2, 0), width), right: min(max(cx + cutW / 2, 0), width))
        return (1 - Double(box.area) / Double(height * width), box)  // correct_lam
    }

    /// `clips` (N, T, H, W, C) mixed with themselves flipped: by `lambda` everywhere, or inside
    /// `box` of every frame taken whole from the flipped clip.
    public static func mix(_ clips: Tensor, lambda: Double, box: Box?) -> Tensor {
        let n = clips.shape[0], perClip = clips.count / max(n, 1)
        let result = Tensor(transient: clips.shape)
        let (x, y) = (clips.data, result.data)
        guard let box else {
            let (a, b) = (Float(lambda), Float(1 - lambda))
            for i in 0..<n {
                let (own, other, out) = (x + i * perClip, x + (n - 1 - i) * perClip, y + i * perClip)
                for j in 0..<perClip { out[j] = a * own[j] + b * other[j] }
            }
            return result
        }
        result.copy(from: clips)
        let (h, w, c) = (clips.shape[2], clips.shape[3], clips.shape[4])
        let frames = perClip / (h * w * c), run = (box.right - box.left) * c
        for i in 0..<n {
            for f in 0..<frames {
                for row in box.top..<box.bottom {
                    let at = f * h * w * c + (row * w + box.left) * c
                    (y + i * perClip + at).update(from: x + (n - 1 - i) * perClip + at, count: run)
                }
            }
        }
        return result
    }

    /// A draw of Beta(alpha, alpha): X / (X + Y) of two Gamma(alpha) draws.
    static func beta(_ alpha: Double, using generator: inout SeededGenerator) -> Double {
        let x = gamma(alpha, using: &generator), y = gamma(alpha, using: &generator)
        return x + y > 0 ? x / (x + y) : 0.5
    }

    /// A draw of Gamma(shape, 1), by Marsaglia and Tsang's method (shape below 1: boosted by
    /// U^(1/shape)).
    static func gamma(_ shape: Double, using generator: inout SeededGenerator) -> Double {
        if shape < 1 {
            let u = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &generator)
            return gamma(shape + 1, using: &generator) * pow(u, 1 / shape)
        }
        let d = shape - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            var x = 0.0, v = 0.0
            repeat {
                // a standard normal draw (Box-Muller)
                let u1 = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &generator)
                let u2 = Double.random(in: 0..<1, using: &generator)
                x = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &generator)
            if log(u) < 0.5 * x * x + d - d * v + d * log(v) { return d * v }
        }
    }
}
