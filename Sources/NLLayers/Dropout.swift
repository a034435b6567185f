import NLTensor

/// Zeroes each element with probability p while training and scales the rest by 1/(1-p), as
/// `torch.nn.Dropout`; the identity in inference. Draws come from a seeded generator whose state
/// checkpoints save, so a resumed run draws the same masks.
public final class Dropout: Layer {
    public let probability: Float
    public var generator: SeededGenerator

    private var mask: Tensor?  // 0 or 1/(1-p) per element; nil when the last forward was the identity

    public init(probability: Float, seed: UInt64 = 0) {
        precondition(probability >= 0 && probability < 1, "dropout probability \(probability) is not in [0, 1)")
        self.probability = probability
        generator = SeededGenerator(seed: seed)
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        guard training && probability > 0 else {
            mask = nil
            return x
        }
        let keep = 1 / (1 - probability)
        let m = Tensor(zeros: x.shape)
        for i in 0..<x.count { m.data[i] = generator.uniform() < probability ? 0 : keep }
        mask = m
        let y = Tensor(transient: x.shape)
        for i in 0..<x.count { y.data[i] = x.data[i] * m.data[i] }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let m = mask else { return dy }
        let dx = Tensor(transient: dy.shape)
        for i in 0..<dy.count { dx.data[i] = dy.data[i] * m.data[i] }
        return dx
    }
}
