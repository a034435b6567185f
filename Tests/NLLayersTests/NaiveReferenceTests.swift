import NLLayers
import NLTestSupport
import Testing
import NLTensor

/// The fast layers against the definitions in NaiveReferences.swift, over grids of shapes,
/// strides and paddings (odd sizes included).
struct NaiveReferenceTests {
    static let kernels = [
        Size3(1), Size3(3, 1, 1), Size3(2, 1, 1), Size3(1, 3, 3), Size3(3), Size3(2, 2, 3), Size3(3, 5, 5),
    ]
    static let strides = [Size3(1), Size3(1, 2, 2), Size3(2, 1, 1), Size3(2), Size3(1, 3, 2)]
    static let paddings = [Size3(0), Size3(1, 0, 0), Size3(0, 1, 1), Size3(1), Size3(1, 2, 2)]

    @Test(arguments: kernels)
    func convolutionMatchesDefinition(kernel: Size3) {
        var generator = SeededGenerator(seed: 11)
        let inputShape = [2, 5, 7, 6, 3]
        var cases = 0
        for stride in Self.strides {
            for padding in Self.paddings
            where padding.t < kernel.t + 1 && padding.h < kernel.h + 2 && padding.w < kernel.w + 2 {
                let fits =
                    (inputShape[1] + 2 * padding.t >= kernel.t) && (inputShape[2] + 2 * padding.h >= kernel.h)
                    && (inputShape[3] + 2 * padding.w >= kernel.w)
                guard fits else { continue }
                for bias in [false, true] {
                    let conv = Conv3d(
                        inputChannels: 3, outputChannels: 4, kernelSize: kernel, stride: stride, padding: padding,
                        bias: bias)
                    compare(conv, input: randomTensor(inputShape, using: &generator), using: &generator)
                    cases += 1
                }
            }
        }
        #expect(cases >= 10)
    }

    /// A frame larger than one column tile, so vol2col is built in several tiles per frame.
    @Test func convolutionAcrossSeveralTiles() {
        var generator = SeededGenerator(seed: 12)
        let conv = Conv3d(inputChannels: 64, outputChannels: 8, kernelSize: Size3(1, 3, 3), padding: Size3(0, 1, 1))
        compare(conv, input: randomTensor([1, 2, 32, 33, 64], using: &generator), using: &generator)
    }

    /// Several tiles per thread with a strided temporal kernel: the input gradient goes back
    /// through columns, scattered phase by phase so threads never add into the same frame.
    @Test func stridedConvolutionAcrossSeveralTiles() {
        var generator = SeededGenerator(seed: 15)
        let conv = Conv3d(
            inputChannels: 64, outputChannels: 8, kernelSize: Size3(3), stride: Size3(2, 1, 1), padding: Size3(1))
        compare(conv, input: randomTensor([1, 5, 20, 20, 64], using: &generator), using: &generator)
    }

    /// The first layer of a network skips the input gradient and still gets its weight gradient.
    @Test func convolutionWithoutInputGradient() {
        var generator = SeededGenerator(seed: 13)
        let conv = Conv3d(
            inputChannels: 3, outputChannels: 4, kernelSize: Size3(5, 7, 7), stride: Size3(2), padding: Size3(2, 3, 3),
            bias: false)
        conv.computesInputGradient = false
        let x = randomTensor([1, 6, 9, 9, 3], using: &generator)
        conv.weight.value.fillNormal(std: 0.3, using: &generator)
        let y = conv.forward(x, training: true)
        let dy = randomTensor(y.shape, using: &generator)
        #expect(conv.backward(dy).count == 0)
        let (_, dw, _) = NaiveConvolution(conv: conv).backward(x, dy)
        #expect(relativeError(conv.weight.gradient, dw) < 1e-5)
    }

    /// The direct loops for few input channels (a stem) and vol2col, each against the definition:
    /// edges where windows leave the input on one side, both sides or everywhere, a width that
    /// leaves positions after the blocks of six, one and four channel blocks of 16.
    @Test(arguments: [1, 3, 4])
    func fewChannelConvolutionMatchesDefinition(inputChannels: Int) {
        var generator = SeededGenerator(seed: 14)
        let cases: [(kernel: Size3, stride: Size3, padding: Size3, input: [Int])] = [
            (Size3(5, 7, 7), Size3(1, 2, 2), Size3(2, 3, 3), [2, 4, 9, 13]),  // the stem
            (Size3(3, 7, 7), Size3(2, 2, 2), Size3(1, 3, 3), [1, 5, 11, 16]),
            (Size3(1, 3, 3), Size3(1), Size3(0, 1, 1), [1, 2, 5, 8]),
            (Size3(2, 3, 5), Size3(1, 2, 3), Size3(0), [1, 3, 6, 17]),
            (Size3(1, 3, 9), Size3(1, 1, 2), Size3(0, 2, 4), [1, 1, 4, 7]),  // wider than the input
            (Size3(1, 1, 2), Size3(1), Size3(0, 0, 1), [2, 2, 3, 10]),
        ]
        for (kernel, stride, padding, size) in cases {
            for direct in [true, false] {
                for cout in [16, 64] {
                    let conv = Conv3d(
                        inputChannels: inputChannels, outputChannels: cout, kernelSize: kernel, stride: stride,
                        padding: padding, bias: cout == 16)
                    conv.usesDirectLoops = direct
                    compare(conv, input: randomTensor(size + [inputChannels], using: &generator), using: &generator)
                }
            }
        }
    }

    func compare(_ conv: Conv3d, input x: Tensor, using generator: inout SeededGenerator) {
        randomizeParameters(conv, using: &generator)
        let naive = NaiveConvolution(conv: conv)
        let label =
            "kernel \(conv.kernelSize) stride \(conv.stride) padding \(conv.padding) bias \(conv.bias != nil) channels \(conv.inputChannels)->\(conv.outputChannels) direct \(conv.usesDirectLoops)"
        let y = conv.forward(x, training: true)
        #expect(relativeError(y, naive.forward(x)) < 1e-5, "forward, \(label)")
        let dy = randomTensor(y.shape, using: &generator)
        conv.zeroGradients()
        let dx = conv.backward(dy)
        let (ndx, ndw, ndb) = naive.backward(x, dy)
        #expect(relativeError(dx, ndx) < 1e-5, "input gradient, \(label)")
        #expect(relativeError(conv.weight.gradient, ndw) < 1e-5, "weight gradient, \(label)")
        if let bias = conv.bias { #expect(relativeError(bias.gradient, ndb) < 1e-5, "bias gradient, \(label)") }
        // Added to another gradient instead (a residual block's shortcut), in the GEMMs or after.
        let sum = randomTensor(x.shape, using: &generator)
        let expected = Tensor(shape: x.shape, values: zip(sum.array, ndx.array).map { $0 + $1 })
        let returned = conv.backward(dy, addingInputGradientTo: sum)
        #expect(
            returned.storage === sum.storage && relativeError(sum, expected) < 1e-5, "input gradient added, \(label)")
    }

    @Test func maxPoolMatchesDefinition() {
        var generator = SeededGenerator(seed: 14)
        let kernels = [Size3(1, 3, 3), Size3(2, 1, 1), Size3(1, 2, 2), Size3(3), Size3(2, 3, 2)]
        for kernel in kernels {
            for stride in [Size3(1, 2, 2), Size3(2, 1, 1), Size3(1), Size3(2)] {
                for padding in [Size3(0), Size3(0, 1, 1), Size3(1)]
                where 2 * padding.t <= kernel.t && 2 * padding.h <= kernel.h && 2 * padding.w <= kernel.w {
                    let pool = MaxPool3d(kernelSize: kernel, stride: stride, padding: padding)
                    let x = distinctValues([2, 5, 7, 6, 3], using: &generator)
                    let y = pool.forward(x, training: true)
                    let dy = randomTensor(y.shape, using: &generator)
                    let naive = naiveMaxPool(pool, x, dy)
                    #expect(y.array == naive.y.array, "forward, kernel \(kernel) stride \(stride) padding \(padding)")
                    #expect(
                        relativeError(pool.backward(dy), naive.dx) < 1e-6,
                        "backward, kernel \(kernel) stride \(stride) padding \(padding)")
                }
            }
        }
    }

    /// Equal values: the gradient goes to the first position of each window, as in PyTorch.
    @Test func maxPoolTiesGoToTheFirstPosition() {
        let pool = MaxPool3d(kernelSize: Size3(1, 3, 3), stride: Size3(1, 2, 2), padding: Size3(0, 1, 1))
        let x = Tensor(shape: [1, 1, 5, 5, 2], repeating: 1)
        let y = pool.forward(x, training: true)
        let dy = Tensor(shape: y.shape, repeating: 1)
        #expect(pool.backward(dy).array == naiveMaxPool(pool, x, dy).dx.array)
    }

    @Test(arguments: [[2, 3, 4, 5, 6], [1, 1, 1, 3, 5], [3, 1, 7, 3, 2]])
    func batchNormMatchesDefinition(shape: [Int]) {
        var generator = SeededGenerator(seed: 15)
        for (training, frozen) in [(true, false), (false, false), (true, true)] {
            let bn = BatchNorm3d(channels: shape[4])
            randomizeParameters(bn, using: &generator)
            for j in 0..<bn.channels {
                bn.runningMean.data[j] = generator.normal() * 0.2
                bn.runningVariance.data[j] = 0.5 + generator.uniform()
            }
            bn.frozen = frozen
            let x = randomTensor(shape, std: 2, using: &generator)
            let y = bn.forward(x, training: training)
            let dy = randomTensor(shape, using: &generator)
            bn.zeroGradients()
            let dx = bn.backward(dy)
            let (ny, ndx, ndw, ndb) = naiveBatchNorm(bn, x, dy, batchStatistics: training && !frozen)
            let label = "training \(training) frozen \(frozen)"
            #expect(relativeError(y, ny) < 1e-5 && relativeError(dx, ndx) < 1e-5, "\(label)")
            #expect(
                relativeError(bn.weight.gradient, Tensor(shape: [bn.channels], values: ndw.map(Float.init))) < 1e-5,
                "\(label)")
            #expect(
                relativeError(bn.bias.gradient, Tensor(shape: [bn.channels], values: ndb.map(Float.init))) < 1e-5,
                "\(label)")
        }
    }

    /// The batch statistics come from one pass of sums shifted by the running mean: with data
    /// 6000 standard deviations away from it (a first step on unnormalised input), the variance is
    /// still the two-pass one to Float precision.
    @Test func batchStatisticsFarFromTheRunningMean() {
        var generator = SeededGenerator(seed: 16)
        let bn = BatchNorm3d(channels: 13)
        let x = randomTensor([2, 3, 5, 4, 13], std: 0.05, using: &generator)
        for i in 0..<x.count { x.data[i] += 300 }
        bn.runningVariance.zero()
        _ = bn.forward(x, training: true)
        let (rows, n) = (x.rows, Double(x.rows))
        for j in 0..<13 {
            let values = (0..<rows).map { Double(x.data[$0 * 13 + j]) }
            let mean = values.reduce(0, +) / n
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
            let expected = 0.1 * variance * n / (n - 1)
            #expect(abs(Double(bn.runningVariance.data[j]) - expected) / expected < 1e-6, "channel \(j)")
            #expect(abs(Double(bn.runningMean.data[j]) - 0.1 * mean) / (0.1 * mean) < 1e-6, "channel \(j)")
        }
    }

    /// BatchNorm3d's fused ReLU is BatchNorm3d then ReLU, bit for bit, forward and backward.
    @Test func fusedReLUIsBatchNormThenReLU() {
        var generator = SeededGenerator(seed: 17)
        for (training, frozen) in [(true, false), (false, false), (true, true)] {
            // 13 channels: a vector of 8 and a scalar tail.
            let (fused, plain, relu) = (BatchNorm3d(channels: 13, fusedReLU: true), BatchNorm3d(channels: 13), ReLU())
            randomizeParameters(fused, using: &generator)
            for (a, b) in zip(fused.state, plain.state) {
                if case .parameter(let p) = a.entry, case .parameter(let q) = b.entry { q.value.copy(from: p.value) }
            }
            (fused.frozen, plain.frozen) = (frozen, frozen)
            let x = randomTensor([2, 3, 4, 2, 13], using: &generator),
                dy = randomTensor([2, 3, 4, 2, 13], using: &generator)
            let y = fused.forward(x, training: training)
            #expect(y.array == relu.forward(plain.forward(x, training: training), training: training).array)
            #expect(y.array.contains(0) && y.array.contains { $0 > 0 }, "both sides of the kink")
            let dx = fused.backward(dy), expected = plain.backward(relu.backward(dy))
            #expect(dx.array == expected.array && fused.weight.gradient.array == plain.weight.gradient.array)
            #expect(
                fused.bias.gradient.array == plain.bias.gradient.array
                    && fused.runningMean.array == plain.runningMean.array)
        }
    }

    /// BatchNorm3d adding a residual then applying a ReLU as it writes (a residual block's last
    /// norm) is BatchNorm3d then ReLU.forward(sum:), bit for bit, from float32 and from bfloat16
    /// input, training and not; its backward is the norm's alone.
    @Test func residualAddedInTheNormIsNormThenSum() {
        var generator = SeededGenerator(seed: 18)
        for training in [true, false] {
            // 13 channels: a vector of 8 and a scalar tail.
            let (adding, plain) = (BatchNorm3d(channels: 13), BatchNorm3d(channels: 13))
            var same = SeededGenerator(seed: 3)
            randomizeParameters(adding, using: &same)
            same = SeededGenerator(seed: 3)
            randomizeParameters(plain, using: &same)
            let x = randomTensor([2, 3, 4, 2, 13], using: &generator)
            let residual = randomTensor(x.shape, using: &generator)
            let x16 = BFloat16Tensor(rounding: x)
            let y = adding.forward(x, training: training, addingThenReLU: residual)
            let expected = ReLU().forward(sum: plain.forward(x, training: training), residual)
            #expect(y.array == expected.array)
            #expect(y.array.contains(0) && y.array.contains { $0 > 0 }, "both sides of the kink")
            let dy = randomTensor(x.shape, using: &generator)
            #expect(adding.backward(dy).array == plain.backward(dy).array)
            #expect(adding.weight.gradient.array == plain.weight.gradient.array)
            let y16 = adding.forward(x16, training: training, addingThenReLU: residual)
            let expected16 = ReLU().forward(sum: plain.forward(x16, training: training), residual)
            #expect(y16.array == expected16.array)
        }
    }

    @Test(arguments: NonLocalBlock.Mode.allCases)
    func nonLocalMatchesDefinition(mode: NonLocalBlock.Mode) {
        var generator = SeededGenerator(seed: 16)
        for (subSample, useScale, shape) in [
            (true, false, [2, 3, 4, 6, 8]), (false, true, [1, 2, 3, 5, 6]), (true, true, [2, 1, 5, 3, 4]),
        ] {
            let block = NonLocalBlock(channels: shape[4], mode: mode, useScale: useScale, subSample: subSample)
            randomizeParameters(block, using: &generator)
            let x = randomTensor(shape, using: &generator)
            for training in [true, false] {
                let y = block.forward(x, training: training)
                #expect(
                    relativeError(y, naiveNonLocal(block, x, training: training)) < 1e-5,
                    "\(mode) subSample \(subSample) useScale \(useScale) training \(training)")
            }
        }
    }

    @Test func contextBlockMatchesDefinition() {
        var generator = SeededGenerator(seed: 17)
        for (pooling, add, mul) in [
            (ContextBlock.Pooling.attention, true, false), (.average, true, true), (.attention, false, true),
        ] {
            let block = ContextBlock(channels: 16, ratio: 0.25, pooling: pooling, channelAdd: add, channelMul: mul)
            randomizeParameters(block, using: &generator)
            let x = randomTensor([2, 2, 3, 5, 16], using: &generator)
            #expect(
                relativeError(block.forward(x, training: true), naiveContext(block, x)) < 1e-5,
                "\(pooling) add \(add) mul \(mul)")
        }
    }

    @Test func smallLayersMatchDefinitions() {
        var generator = SeededGenerator(seed: 18)
        let x = randomTensor([2, 3, 4, 5, 6], using: &generator)
        // ReLU
        let relu = ReLU()
        #expect(relu.forward(x, training: true).array == x.array.map { max($0, 0) })
        let dy = randomTensor(x.shape, using: &generator)
        #expect(relu.backward(dy).array == zip(x.array, dy.array).map { $0 > 0 ? $1 : 0 })
        // Global average pooling
        let gap = GlobalAveragePool()
        let pooled = gap.forward(x, training: true)
        for s in 0..<2 {
            for c in 0..<6 {
                let mean = (0..<60).map { Double(x.data[(s * 60 + $0) * 6 + c]) }.reduce(0, +) / 60
                #expect(abs(Double(pooled.data[s * 6 + c]) - mean) < 1e-6)
            }
        }
        // Linear
        let linear = Linear(inputFeatures: 6, outputFeatures: 4)
        randomizeParameters(linear, using: &generator)
        let features = randomTensor([3, 6], using: &generator)
        let out = linear.forward(features, training: true)
        for s in 0..<3 {
            for o in 0..<4 {
                let v = (0..<6).reduce(Double(linear.bias!.value.data[o])) {
                    $0 + Double(features.data[s * 6 + $1]) * Double(linear.weight.value.data[o * 6 + $1])
                }
                #expect(abs(Double(out.data[s * 4 + o]) - v) < 1e-5)
            }
        }
    }

    @Test func dropoutIsSeededScaledAndTheIdentityInInference() {
        let x = Tensor(shape: [4, 1000], repeating: 1)
        let a = Dropout(probability: 0.3, seed: 5), b = Dropout(probability: 0.3, seed: 5)
        let ya = a.forward(x, training: true).copy()
        #expect(ya.array == b.forward(x, training: true).array)
        let kept = ya.array.filter { $0 != 0 }
        #expect(kept.allSatisfy { abs($0 - 1 / 0.7) < 1e-6 })
        #expect(abs(Float(kept.count) / 4000 - 0.7) < 0.03)
        let dy = Tensor(shape: x.shape, repeating: 2)
        #expect(a.backward(dy).array == ya.array.map { $0 * 2 })
        #expect(a.forward(x, training: false).array == x.array)
    }
}
