import NLLayers
import NLTestSupport
import Testing
import NLTensor

/// Every layer's input and parameter gradients against central differences of
/// L = sum(forward(x) * r) (see `centralDifferenceCheck`).
struct GradientCheckTests {
    func expectGradients(
        _ layer: Layer, _ x: Tensor, training: Bool = true, step: Float = 1e-2, _ label: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let (worst, at) = centralDifferenceCheck(layer, input: x, training: training, step: step)
        #expect(worst <= 1, "\(label): \(at)", sourceLocation: sourceLocation)
    }

    @Test func convolution() {
        var generator = SeededGenerator(seed: 21)
        for (k, s, p) in [
            (Size3(1), Size3(1), Size3(0)), (Size3(3, 1, 1), Size3(1), Size3(1, 0, 0)),
            (Size3(1, 3, 3), Size3(1, 2, 2), Size3(0, 1, 1)), (Size3(3), Size3(2, 1, 2), Size3(1, 0, 1)),
        ] {
            let conv = Conv3d(inputChannels: 3, outputChannels: 4, kernelSize: k, stride: s, padding: p)
            randomizeParameters(conv, using: &generator)
            expectGradients(conv, randomTensor([2, 4, 5, 5, 3], using: &generator), "conv \(k) \(s) \(p)")
        }
    }

    @Test func batchNorm() {
        var generator = SeededGenerator(seed: 22)
        for (training, frozen) in [(true, false), (false, false), (true, true)] {
            let bn = BatchNorm3d(channels: 4)
            randomizeParameters(bn, using: &generator)
            bn.frozen = frozen
            expectGradients(
                bn, randomTensor([2, 2, 3, 3, 4], using: &generator), training: training,
                "bn training \(training) frozen \(frozen)")
        }
    }

    @Test func layerNormReluPoolsLinear() {
        var generator = SeededGenerator(seed: 23)
        let ln = LayerNorm(channels: 5)
        randomizeParameters(ln, using: &generator)
        expectGradients(ln, randomTensor([3, 1, 1, 1, 5], using: &generator), "layer norm")
        // Inputs away from ReLU's kink and with distinct values for max pooling.
        let x = distinctValues([2, 3, 4, 5, 3], spacing: 0.05, using: &generator)
        expectGradients(ReLU(), x, "relu")
        expectGradients(
            MaxPool3d(kernelSize: Size3(1, 3, 3), stride: Size3(1, 2, 2), padding: Size3(0, 1, 1)), x, "max pool")
        expectGradients(MaxPool3d(kernelSize: Size3(3), stride: Size3(2), padding: Size3(1)), x, "max pool 3x3x3")
        expectGradients(GlobalAveragePool(), x, "global average pool")
        let linear = Linear(inputFeatures: 7, outputFeatures: 3)
        randomizeParameters(linear, using: &generator)
        expectGradients(linear, randomTensor([4, 7], using: &generator), "linear")
    }

    /// Central differences need a smooth function. Sub-sampling's max pool flips winners when a
    /// conv weight moves (every pooled window shifts at once), and concatenation's ReLU has P x P'
    /// kinks; so the check runs without sub-sampling, with concatenation's scores all positive.
    /// The pool has its own check above, and PyTorch parity covers the blocks with both.
    /// Concatenation's theta bias moves the loss so little that float32 rounding dominates a 1e-2
    /// step's difference quotient (measured: -0.012 at 3e-3, -0.021 or -0.042 at 1e-2 depending
    /// on OpenBLAS's kernel, against -0.024 analytic); its scores keep 0.5 from ReLU's kink, so a
    /// 3e-2 step (stencil reach 6e-2) is still smooth and its quotient stable across kernels.
    @Test(arguments: NonLocalBlock.Mode.allCases)
    func nonLocal(mode: NonLocalBlock.Mode) {
        var generator = SeededGenerator(seed: 24)
        for useScale in [false, true] {
            let block = NonLocalBlock(channels: 6, mode: mode, useScale: useScale, subSample: false)
            randomizeParameters(block, using: &generator)
            let x = randomTensor([2, 2, 4, 4, 6], using: &generator)
            if mode == .concatenation { conditionConcatenation(block, x) }
            for training in [false, true] {
                expectGradients(
                    block, x, training: training, step: mode == .concatenation ? 3e-2 : 1e-2,
                    "non-local \(mode) useScale \(useScale) training \(training)")
            }
        }
    }

    /// Shifts theta's bias along w1 just enough that every score w1 . theta_i + w2 . phi_j is at
    /// least 0.5, far from ReLU's kink. With all scores positive, y_i = a_i mean(g) + constant, so
    /// g also gets a clear mean: otherwise conv_out's input has almost no variance per channel and
    /// the batch-statistics BatchNorm after it is too sharply curved for finite differences.
    func conditionConcatenation(_ block: NonLocalBlock, _ x: Tensor) {
        block.g.bias!.value.fill(2)
        let (theta, phi, w, inner) = (
            block.theta!, block.phi!, block.concatProject!.weight.value.data, block.innerChannels
        )
        func scores(_ conv: Conv3d, _ weights: UnsafeMutablePointer<Float>) -> [Float] {
            let out = conv.forward(x, training: false)
            return (0..<out.rows).map { r in (0..<inner).reduce(0) { $0 + out.data[r * inner + $1] * weights[$1] } }
        }
        let lowest = scores(theta, w).min()! + scores(phi, w + inner).min()!
        let norm = (0..<inner).reduce(Float(0)) { $0 + w[$1] * w[$1] }
        for c in 0..<inner { theta.bias!.value.data[c] += (0.5 - lowest) * w[c] / norm }
    }

    @Test func contextBlock() {
        var generator = SeededGenerator(seed: 25)
        for (pooling, add, mul) in [
            (ContextBlock.Pooling.attention, true, true), (.average, true, false), (.attention, false, true),
        ] {
            let block = ContextBlock(channels: 12, ratio: 1.0 / 3, pooling: pooling, channelAdd: add, channelMul: mul)
            randomizeParameters(block, using: &generator)
            // LayerNorm's output is within +-sqrt(planes - 1) * weight of its bias: a bias of 4
            // keeps the ReLU after it away from its kink (ReLU has its own check).
            for transform in [block.channelAdd, block.channelMul].compactMap({ $0 }) {
                transform.norm.bias.value.fill(4)
            }
            expectGradients(
                block, randomTensor([2, 2, 3, 3, 12], using: &generator), "context \(pooling) add \(add) mul \(mul)")
        }
    }

}
