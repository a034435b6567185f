import NLTensor

/// Softmax cross-entropy over (N, classes) logits, averaged over the batch, as
/// `torch.nn.functional.cross_entropy`. Also gives the softmax probabilities for metrics.
public enum SoftmaxCrossEntropy {
    /// The mean loss and dLoss/dLogits (N, classes).
    public static func lossAndGradient(logits: Tensor, labels: [Int]) -> (loss: Float, gradient: Tensor) {
        let (n, k) = (logits.shape[0], logits.channels)
        precondition(labels.count == n, "\(labels.count) labels for \(n) logits")
        let gradient = softmax(logits)
        var loss = 0.0
        for s in 0..<n {
            precondition(labels[s] >= 0 && labels[s] < k, "label \(labels[s]) is not a class of \(k)")
            // -log softmax as log-sum-exp in Double (as PyTorch's log_softmax): -log of a float32
            // probability would lose a small loss to rounding and cap a large one.
            let z = logits.data + s * k
            var top = -Float.infinity
            for j in 0..<k { top = max(top, z[j]) }
            var sum = 0.0
            for j in 0..<k { sum += exp(Double(z[j] - top)) }
            loss += log(sum) - Double(z[labels[s]] - top)
            let p = gradient.data + s * k
            p[labels[s]] -= 1
            for j in 0..<k { p[j] /= Float(n) }
        }
        return (Float(loss / Double(n)), gradient)
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
