import NLTensor

/// Softmax cross-entropy over (N, classes) logits, as `torch.nn.functional.cross_entropy`, with
/// its label smoothing and class weights, and against mixed targets (mixup, cutmix). Also gives
/// the softmax probabilities for metrics.
public enum SoftmaxCrossEntropy {
    /// What each row of a batch should be: its classes and their shares (one class with 1, or two
    /// mixed by mixup or cutmix), the label smoothing, and a weight per class.
    public struct Targets: Sendable {
        public var rows: [[(label: Int, share: Float)]]
        /// Each row's target becomes (1 - smoothing) * its shares + smoothing / classes.
        public var smoothing: Float = 0
        /// Empty: every class weighs 1.
        public var classWeights: [Float] = []

        public init(labels: [Int], smoothing: Float = 0, classWeights: [Float] = []) {
            rows = labels.map { [(label: $0, share: Float(1))] }
            (self.smoothing, self.classWeights) = (smoothing, classWeights)
        }

        /// Row i mixes its label (share `lambda`) with the label of row N-1-i, the batch flipped
        /// as PySlowFast's mixup pairs clips.
        public func mixed(lambda: Float) -> Targets {
            var result = self
            result.rows = rows.indices.map { i in
                rows[i].map { ($0.label, $0.share * lambda) }
                    + rows[rows.count - 1 - i].map {
                        ($0.label, $0.share * (1 - lambda))
                    }
            }
            return result
        }

        func weight(_ label: Int) -> Float { classWeights.isEmpty ? 1 : classWeights[label] }
    }

    /// The mean loss and dLoss/dLogits (N, classes) for hard labels.
    public static func lossAndGradient(logits: Tensor, labels: [Int]) -> (loss: Float, gradient: Tensor) {
        lossAndGradient(logits: logits, targets: Targets(labels: labels))
    }

    /// The loss and dLoss/dLogits (N, classes): with t the smoothed targets and h the shares
    /// before smoothing, sum over rows and classes of w_c t_ic (-log p_ic), divided by the sum of
    /// w_c h_ic. That is PyTorch's weighted mean (cross_entropy with weight= and label_smoothing=)
    /// for hard labels, and the mean over the batch, as PySlowFast's soft-target loss, for mixed
    /// targets of equal weights.
    public static func lossAndGradient(logits: Tensor, targets: Targets) -> (loss: Float, gradient: Tensor) {
        let (n, k) = (logits.shape[0], logits.channels)
        precondition(targets.rows.count == n, "\(targets.rows.count) targets for \(n) logits")
        precondition(targets.classWeights.isEmpty || targets.classWeights.count == k, "class weights for \(k) classes")
        let gradient = softmax(logits)
        let uniform = targets.smoothing / Float(k)
        var loss = 0.0, mass = 0.0
        for s in 0..<n {
            // the row's target, smoothed, and weighed: w_c t_c
            var weighted = [Float](repeating: 0, count: k)
            for (label, share) in targets.rows[s] {
                precondition(label >= 0 && label < k, "label \(label) is not a class of \(k)")
                weighted[label] += (1 - targets.smoothing) * share
                mass += Double(targets.weight(label) * share)
            }
            for j in 0..<k { weighted[j] = (weighted[j] + uniform) * targets.weight(j) }
            // -log softmax as log-sum-exp in Double (as PyTorch's log_softmax): -log of a float32
            // probability would lose a small loss to rounding and cap a large one.
            let z = logits.data + s * k
            var top = -Float.infinity
            for j in 0..<k { top = max(top, z[j]) }
            var sum = 0.0
            for j in 0..<k { sum += exp(Double(z[j] - top)) }
            let logSum = log(sum)
            var total: Float = 0
            for j in 0..<k where weighted[j] != 0 {
                loss += Double(weighted[j]) * (logSum - Double(z[j] - top))
                total += weighted[j]
            }
            let p = gradient.data + s * k
            for j in 0..<k { p[j] = p[j] * total - weighted[j] }
        }
        for i in 0..<gradient.count { gradient.data[i] /= Float(mass) }
        return (Float(loss / mass), gradient)
    }

    /// Row-wise softmax of (N, classes) logits, computed stably.
    public static func softmax(_ logits: Tensor) -> Tensor {
        let result = logits.copy()
        softmaxRows(result.data, rows: logits.rows, columns: logits.channels)
        return result
    }
}

#if canImport(Glibc)
    import Glibc
#endif
