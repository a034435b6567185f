import CDNNL
import NLLayers
import NLTensor
import NLTestSupport
import Testing

/// Convolutions in bfloat16 (oneDNN) against the float32 ones: forward, the input gradient and
/// the weight gradient of NL I3D's kinds of kernels, within bfloat16's tolerance. bfloat16 keeps
/// 8 significant bits (a relative rounding of 2^-9 = 0.2% per input); summed over hundreds of
/// products with float32 accumulation, the result's error stays near that: 1% of the largest
/// magnitude is the bound. On a CPU without AVX512_BF16 or AMX (where oneDNN has no bfloat16
/// convolution, and the commands refuse bf16) the emulation stands in for oneDNN.
struct BFloat16Tests {
    /// oneDNN's bfloat16 where this CPU runs it, else the emulation.
    static let engine: ConvolutionAlgorithm = Precision.bf16.unavailable == nil ? .bfloat16 : .emulatedBFloat16

    static let shapes: [(cin: Int, cout: Int, kernel: Size3, stride: Size3, padding: Size3, input: [Int])] = [
        (16, 32, Size3(1, 3, 3), Size3(1), Size3(0, 1, 1), [2, 3, 9, 9, 16]),  // a 1x3x3 conv
        (32, 16, Size3(3, 1, 1), Size3(1), Size3(1, 0, 0), [2, 4, 7, 7, 32]),  // an inflated 3x1x1 conv
        (24, 48, Size3(1, 1, 1), Size3(1, 2, 2), Size3(0), [1, 2, 8, 8, 24]),  // a strided shortcut
        (3, 16, Size3(5, 7, 7), Size3(1, 2, 2), Size3(2, 3, 3), [1, 4, 16, 16, 3]),  // the stem
        (16, 16, Size3(3, 3, 3), Size3(1), Size3(1), [2, 4, 8, 8, 16]),  // a 3x3x3 inflated conv
        (8, 16, Size3(3, 3, 3), Size3(1, 2, 2), Size3(1), [2, 4, 9, 9, 8]),  // strided, odd size
    ]

    @Test(arguments: 0..<shapes.count) func convolutionMatchesFloat32(_ index: Int) {
        let s = Self.shapes[index]
        var generator = SeededGenerator(seed: UInt64(40 + index))
        let own = Conv3d(
            inputChannels: s.cin, outputChannels: s.cout, kernelSize: s.kernel, stride: s.stride, padding: s.padding)
        randomizeParameters(own, using: &generator)
        let bf16 = Conv3d(
            inputChannels: s.cin, outputChannels: s.cout, kernelSize: s.kernel, stride: s.stride, padding: s.padding)
        bf16.weight.value.copy(from: own.weight.value)
        bf16.bias!.value.copy(from: own.bias!.value)
        bf16.algorithm = Self.engine
        let emulated = Conv3d(
            inputChannels: s.cin, outputChannels: s.cout, kernelSize: s.kernel, stride: s.stride, padding: s.padding)
        emulated.weight.value.copy(from: own.weight.value)
        emulated.bias!.value.copy(from: own.bias!.value)
        emulated.algorithm = .emulatedBFloat16
        let x = randomTensor(s.input, using: &generator)
        let y = own.forward(x, training: true), y16 = bf16.forward(x, training: true)
        let yEmulated = emulated.forward(x, training: true)
        let dy = randomTensor(y.shape, using: &generator)
        for conv in [own, bf16, emulated] {
            conv.weight.gradient.fill(0.5)  // the gradient is added to what is there
        }
        let dx = own.backward(dy), dx16 = bf16.backward(dy), dxEmulated = emulated.backward(dy)
        // oneDNN computes what the emulation does, up to the order of float32 sums.
        #expect(relativeError(y16, yEmulated) < 1e-5, "forward against the emulation \(relativeError(y16, yEmulated))")
        #expect(relativeError(dx16, dxEmulated) < 1e-5, "input gradient against the emulation")
        #expect(
            relativeError(bf16.weight.gradient, emulated.weight.gradient) < 1e-5,
            "weight gradient against the emulation")
        #expect(relativeError(bf16.bias!.gradient, own.bias!.gradient) < 1e-6, "the bias gradient is float32's")
        #expect(relativeError(y16, y) < 1e-2, "forward \(relativeError(y16, y))")
        #expect(relativeError(dx16, dx) < 1e-2, "input gradient \(relativeError(dx16, dx))")
        #expect(
            relativeError(bf16.weight.gradient, own.weight.gradient) < 1e-2,
            "weight gradient \(relativeError(bf16.weight.gradient, own.weight.gradient))")
        #expect(relativeError(y16, y) > 0, "bfloat16 rounds: the results cannot be float32's to the bit")
        report("bf16 \(s.kernel)", "forward/input/weight", max(relativeError(y16, y), relativeError(dx16, dx)))
    }

    /// A non-local block's pairwise products in bfloat16 (every pairwise function): output and
    /// input gradient within 2% of float32, as the emulation's are, and the parameters' gradients
    /// within 5% of the block's largest. (Block against block, a sharp softmax turns a last-bit difference of the scores
    /// into a bfloat16 rounding the other way: the products are held to the emulation below.)
    @Test(arguments: NonLocalBlock.Mode.allCases)
    func nonLocalProductsMatchFloat32(_ mode: NonLocalBlock.Mode) {
        var generator = SeededGenerator(seed: 77)
        let x = randomTensor([2, 2, 6, 6, 16], using: &generator)
        var blocks: [NonLocalBlock] = []
        for products in [ConvolutionAlgorithm.own, Self.engine, .emulatedBFloat16] {
            var draws = SeededGenerator(seed: 5)
            let block = NonLocalBlock(channels: 16, mode: mode, useScale: mode == .embeddedGaussian)
            randomizeParameters(block, using: &draws)
            block.products = products
            blocks.append(block)
        }
        let outputs = blocks.map { $0.forward(x, training: true) }
        let dOut = randomTensor(outputs[0].shape, using: &generator)
        let dxs = blocks.map { $0.backward(dOut) }
        let gradients = blocks.map { block in block.parameters.map { $0.parameter.gradient } }
        #expect(relativeError(outputs[1], outputs[0]) < 2e-2 && relativeError(dxs[1], dxs[0]) < 2e-2)
        #expect(relativeError(outputs[2], outputs[0]) < 2e-2 && relativeError(dxs[2], dxs[0]) < 2e-2)
        // Against the largest gradient of the block: the bias in front of a softmax has none in
        // exact arithmetic (shift invariance), only rounding noise.
        let scale = gradients[0].map(maxMagnitude).max()!
        for (bf16, float32) in zip(gradients[1], gradients[0]) {
            let difference = (0..<bf16.count).map { abs(bf16.data[$0] - float32.data[$0]) }.max() ?? 0
            #expect(difference <= 5e-2 * scale, "\(difference) of \(scale)")
        }
        #expect(relativeError(outputs[1], outputs[0]) > 0, "bfloat16 rounds")
        report(
            "bf16 non-local \(mode.rawValue)", "output/input gradient",
            max(relativeError(outputs[1], outputs[0]), relativeError(dxs[1], dxs[0])))
    }

    /// oneDNN's bfloat16 matrix products against their emulation (the bfloat16 operands widened,
    /// float32 products) within 1e-5, every transposition, with a scale, on strided operands.
    @Test(.enabled(if: Precision.bf16.unavailable == nil))
    func productsAreTheirEmulation() {
        var generator = SeededGenerator(seed: 12)
        let (m, n, k) = (37, 29, 53)
        let a = BFloat16Tensor(rounding: randomTensor([64 * 64], using: &generator))
        let b = BFloat16Tensor(rounding: randomTensor([64 * 64], using: &generator))
        for (transposeA, transposeB) in [(false, false), (true, false), (false, true), (true, true)] {
            let (lda, ldb) = ((transposeA ? m : k) + 3, (transposeB ? k : n) + 5)
            let oneDNN = Tensor(zeros: [m, 40]), emulated = Tensor(zeros: [m, 40])
            BFloat16Products().multiply(
                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.25, a: a.bits, lda: lda,
                b: b.bits, ldb: ldb, c: oneDNN.data, ldc: 40)
            BFloat16Products.emulate(
                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.25, a: a.bits, lda: lda,
                b: b.bits, ldb: ldb, c: emulated.data, ldc: 40)
            #expect(
                relativeError(oneDNN, emulated) < 1e-5,
                "\(transposeA) \(transposeB): \(relativeError(oneDNN, emulated))")
        }
    }

    /// The vector rounding to bfloat16 (eight at a time) is the scalar one, and both round to
    /// nearest, ties to even: on ties, on values that round up to infinity, on infinities, NaNs,
    /// signed zeros and subnormals, and on ordinary values.
    @Test func vectorRoundingIsScalarRounding() {
        var generator = SeededGenerator(seed: 3)
        let special: [UInt32] = [
            0x3F80_8000, 0x3F81_8000, 0x3F80_7FFF, 0x3F80_8001, 0x7F7F_FFFF, 0xFF7F_8000, 0x7F80_0000, 0xFF80_0000,
            0x7FC0_0000, 0x7F80_0001, 0xFFC1_2345, 0x0000_0000, 0x8000_0000, 0x0000_0001, 0x807F_FFFF,
            0x0000_8000, 0x0001_8000,
        ]
        let values = special.map(Float.init(bitPattern:)) + randomTensor([47], using: &generator).buffer
        let count = (values.count + 7) / 8 * 8
        let padded = values + [Float](repeating: 1.5, count: count - values.count)
        var stored = [UInt16](repeating: 0, count: count)
        stored.withUnsafeMutableBufferPointer { out in
            for i in stride(from: 0, to: count, by: 8) {
                out.baseAddress!.storeBFloat16(Float8(padded[i..<i + 8]), i)
            }
        }
        for (value, bits) in zip(padded, stored) {
            #expect(bits == bfloat16Bits(value), "\(value.bitPattern): \(bits) against \(bfloat16Bits(value))")
            let back = Float(bitPattern: UInt32(bits) << 16)
            if value.isNaN {
                #expect(back.isNaN)
                continue
            }
            let low = Float(bitPattern: value.bitPattern & 0xFFFF_0000)
            let high = Float(bitPattern: (value.bitPattern & 0xFFFF_0000) + 0x1_0000)
            if high.isFinite {  // the nearest, ties to the even one
                let (toLow, toHigh) = (abs(Double(value) - Double(low)), abs(Double(value) - Double(high)))
                let expected = toLow < toHigh || (toLow == toHigh && (low.bitPattern >> 16) & 1 == 0) ? low : high
                #expect(back.bitPattern == expected.bitPattern, "\(value) rounds to \(back), not \(expected)")
            } else if value.isFinite {  // past the largest bfloat16 by half a step or more: infinity
                let beyond = value.bitPattern & 0xFFFF >= 0x8000
                #expect(
                    back == (beyond ? (value < 0 ? -Float.infinity : .infinity) : low), "\(value) rounds to \(back)")
            } else {
                #expect(back == value)
            }
        }
    }

    /// A tensor's rounding (the non-local blocks' operands), eight at a time in parallel ranges
    /// with a tail, is the scalar rounding of every element.
    @Test func tensorRoundingIsScalarRounding() {
        var generator = SeededGenerator(seed: 4)
        let x = randomTensor([3, 40_001], using: &generator)
        x.data[5] = .nan
        x.data[40_000] = .infinity
        let rounded = BFloat16Tensor(rounding: x)
        #expect(rounded.shape == x.shape)
        let wrong = (0..<x.count).filter { rounded.bits[$0] != bfloat16Bits(x.data[$0]) }
        #expect(wrong.isEmpty, "\(wrong.count) elements, the first \(wrong.first ?? 0)")
    }

    /// A ConvModule in bfloat16 hands its convolution the BatchNorm's gradient in bfloat16: the
    /// input gradient and the weight gradient are those of the float32 gradient converted by
    /// oneDNN, to the bit, with and without the ReLU.
    @Test(.enabled(if: Precision.bf16.unavailable == nil), arguments: [true, false])
    func normGradientInBFloat16IsTheConversion(_ activated: Bool) {
        var generator = SeededGenerator(seed: 8)
        let module = ConvModule(
            inputChannels: 16, outputChannels: 32, kernelSize: Size3(1, 3, 3), padding: Size3(0, 1, 1),
            activated: activated)
        randomizeParameters(module, using: &generator)
        module.conv.algorithm = .bfloat16
        let x = randomTensor([2, 3, 9, 9, 16], using: &generator)
        let y = module.forward(x, training: true)
        let dy = randomTensor(y.shape, using: &generator)
        module.zeroGradients()
        let fused = module.backward(dy).copy(), fusedWeight = module.conv.weight.gradient.copy()
        module.zeroGradients()
        let normGradient = module.norm!.backward(dy)
        let converted = module.conv.backward(normGradient)
        #expect(Array(fused.buffer) == Array(converted.buffer), "input gradient")
        #expect(Array(fusedWeight.buffer) == Array(module.conv.weight.gradient.buffer), "weight gradient")
        let rounded = normGradient.buffer.map { Float(bitPattern: UInt32(bfloat16Bits($0)) << 16) }
        let widened = module.norm!.backwardInBFloat16(dy).widened()
        #expect(Array(widened.buffer) == rounded)
    }

    /// The forward that writes bfloat16 (a ConvModule's, before its BatchNorm) writes float32
    /// forward's output rounded, up to float32's order of summation; the self-check the tuning
    /// runs holds it to that too, on every kind of kernel.
    @Test(.enabled(if: Precision.bf16.unavailable == nil), arguments: 0..<shapes.count)
    func bfloat16OutputIsTheRoundedOutput(_ index: Int) {
        let s = Self.shapes[index]
        var generator = SeededGenerator(seed: UInt64(60 + index))
        let conv = Conv3d(
            inputChannels: s.cin, outputChannels: s.cout, kernelSize: s.kernel, stride: s.stride, padding: s.padding,
            bias: false)
        randomizeParameters(conv, using: &generator)
        conv.algorithm = .bfloat16
        let x = randomTensor(s.input, using: &generator)
        let y = conv.forward(x, training: true).copy()
        let y16 = conv.forwardInBFloat16(x)
        #expect(y16.roundingError(from: y) < 1e-5, "\(y16.roundingError(from: y))")
        #expect(conv.bfloat16Discrepancy(training: true, using: &generator) < 1e-5)
        #expect(conv.bfloat16Kernels != nil)
    }

    /// A gradient zeroed without a pass (zeroGradients) is written by oneDNN's backward, not added
    /// to: one backward gives what a backward into written zeros gives, over whatever the buffer
    /// held, and the next backward adds to it.
    @Test(.enabled(if: Precision.bf16.unavailable == nil))
    func zeroedGradientIsWrittenThenAddedTo() {
        var generator = SeededGenerator(seed: 9)
        let conv = Conv3d(inputChannels: 16, outputChannels: 32, kernelSize: Size3(1, 3, 3), padding: Size3(0, 1, 1))
        randomizeParameters(conv, using: &generator)
        conv.algorithm = .bfloat16
        let x = randomTensor([2, 3, 9, 9, 16], using: &generator)
        let dy = randomTensor(conv.outputShape(for: x.shape), using: &generator)
        func pass() {
            _ = conv.forward(x, training: true)
            _ = conv.backward(dy)
        }
        conv.weight.gradient.zero()
        pass()
        let once = conv.weight.gradient.copy()
        conv.weight.gradient.fill(7)
        conv.zeroGradients()
        pass()
        let written = Array(conv.weight.gradient.buffer) == Array(once.buffer)
        #expect(written, "the gradient into stale values after zeroGradients is not the gradient into zeros")
        pass()
        let added = Array(conv.weight.gradient.buffer) == once.buffer.map { $0 + $0 }
        #expect(added, "a second backward does not add to the first")
    }

    /// The own loop that writes a weight's bfloat16 copy in a layout pairing two inputs gives the
    /// bits of oneDNN's reorder, padding included (WeightConversion compares the two on a pattern
    /// when made, and keeps the reorder where they differ): forward's layouts on AVX512_BF16, one of
    /// the kind AMX kernels read (inputs blocked twice) and others that end in a pair of inputs,
    /// with outputs that fill no block, an odd number of inputs, the loop's 16-output chunks and
    /// their tails, one tap and many. Layouts that pair outputs (backward data's) or nothing stay
    /// the reorder's. On any CPU: reorders run on all.
    @Test func ownWeightConversionIsTheReorder() {
        let paired = [
            dnnl_AcdeB64a2b, dnnl_AcdeB48a2b, dnnl_AcdeB32a2b, dnnl_AcdeB16a2b, dnnl_AcdeB16b64a2b,
            dnnl_ABcde8b16a2b, dnnl_cdeBa2b,
        ]
        let notPaired = [dnnl_ABcde8a16b2a, dnnl_BAcde8a16b2a, dnnl_Acdeb16a, dnnl_oidhw, dnnl_dhwio]
        let weights: [(outputs: Int, inputs: Int, kernel: Size3)] = [
            (64, 64, Size3(1)), (100, 3, Size3(5, 7, 7)), (24, 48, Size3(3, 1, 1)), (520, 130, Size3(1, 3, 3)),
            (17, 33, Size3(3)),
        ]
        for w in weights {
            for tag in paired {
                let conversion = WeightConversion(outputs: w.outputs, inputs: w.inputs, kernel: w.kernel, into: tag)
                #expect(conversion.isOwn, "\(w) into layout \(tag.rawValue)")
            }
            for tag in notPaired {
                let conversion = WeightConversion(outputs: w.outputs, inputs: w.inputs, kernel: w.kernel, into: tag)
                #expect(!conversion.isOwn, "\(w) into layout \(tag.rawValue)")
            }
        }
    }

    /// How far values lie beyond a rounding of a reference to bfloat16: nothing for either
    /// rounding of a tie, or for a rounding across a power of two; a step too far is half a step
    /// beyond; NaN is infinitely far.
    @Test func roundingErrorIsDistanceBeyondARounding() {
        func error(_ values: [Float], _ reference: [Float]) -> Float {
            let x16 = BFloat16Tensor(transient: [values.count])
            for (i, v) in values.enumerated() { x16.bits[i] = UInt16(v.bitPattern >> 16) }
            return x16.roundingError(from: Tensor(shape: [reference.count], values: reference))
        }
        let step: Float = 1.0 / 128  // between 1 and 2
        #expect(error([1, 1 + step, -2], [1.001, 1 + step * 0.5, -2]) == 0, "nearest, and a tie either way")
        #expect(error([1 + step], [1 + step * 0.5 - 1e-6]) < 1e-5, "the other way, just past a tie")
        #expect(error([2], [2 - step * 0.5]) == 0, "a tie below a power of two, rounded up to it")
        #expect(abs(error([1 + 2 * step, 4], [1 + step, 4]) - step / 2 / 4) < 1e-7, "a whole step off")
        #expect(error([.nan], [1]) == .infinity)
    }

    /// Three ConvModules in bfloat16, as a bottleneck chains them, each norm handing the next
    /// convolution its output in bfloat16 (forwardToBFloat16): the output, every gradient and
    /// the running statistics are those of the modules handing over float32, which the next
    /// convolution converts, to the bit.
    @Test(.enabled(if: Precision.bf16.unavailable == nil))
    func normsHandTheNextConvolutionBFloat16() {
        var generator = SeededGenerator(seed: 31)
        func chain() -> [ConvModule] {
            var same = SeededGenerator(seed: 4)
            return [
                (16, 8, Size3(3, 1, 1), Size3(1, 0, 0), true), (8, 8, Size3(1, 3, 3), Size3(0, 1, 1), true),
                (8, 24, Size3(1), Size3(0), false),
            ].map { cin, cout, kernel, padding, relu in
                let module = ConvModule(
                    inputChannels: cin, outputChannels: cout, kernelSize: kernel, padding: padding, activated: relu)
                randomizeParameters(module, using: &same)
                module.conv.algorithm = .bfloat16
                return module
            }
        }
        let (handing, converting) = (chain(), chain())
        let x = randomTensor([2, 3, 6, 6, 16], using: &generator)
        var handed = handing[0].forwardToBFloat16(x, training: true)
        handed = handing[1].forwardToBFloat16(handed, training: true)
        let y = handing[2].forward(handed, training: true)
        let expected = converting.reduce(x) { $1.forward($0, training: true) }
        #expect(Array(y.buffer) == Array(expected.buffer), "output")
        let dy = randomTensor(y.shape, using: &generator)
        let dx = handing.reversed().reduce(dy) { $1.backward($0) }
        let expectedDx = converting.reversed().reduce(dy) { $1.backward($0) }
        #expect(Array(dx.buffer) == Array(expectedDx.buffer), "input gradient")
        for (a, b) in zip(handing, converting) {
            let (kept, reference) = (a.state, b.state)
            for ((name, entry), (_, other)) in zip(kept, reference) {
                if case .parameter(let p) = entry, case .parameter(let q) = other {
                    #expect(Array(p.gradient.buffer) == Array(q.gradient.buffer), "\(name)")
                }
                if case .buffer(let t) = entry, case .buffer(let u) = other {
                    #expect(Array(t.buffer) == Array(u.buffer), "\(name)")
                }
            }
        }
    }

    /// A BatchNorm given a convolution's output in bfloat16 computes, to the bit, what it computes
    /// from the same values in float32: output, running statistics, input gradient (in float32
    /// and in bfloat16) and the parameters' gradients; with and without its ReLU, on channels
    /// that are not a multiple of 8 (the loops' scalar tail).
    @Test(arguments: [true, false]) func normOfBFloat16InputIsNormOfItsValues(_ relu: Bool) {
        var generator = SeededGenerator(seed: 21)
        let values = randomTensor([2, 3, 5, 5, 20], using: &generator)
        let x16 = BFloat16Tensor(transient: values.shape)
        for i in 0..<values.count { x16.bits[i] = bfloat16Bits(values.data[i] * 3 + 1) }
        let x = x16.widened()
        let norms = (0..<2).map { _ in BatchNorm3d(channels: 20, fusedReLU: relu) }
        for norm in norms {
            var same = SeededGenerator(seed: 5)
            randomizeParameters(norm, using: &same)
        }
        let (y16, y) = (norms[0].forward(x16, training: true), norms[1].forward(x, training: true))
        #expect(Array(y16.buffer) == Array(y.buffer), "output")
        #expect(Array(norms[0].runningMean.buffer) == Array(norms[1].runningMean.buffer))
        #expect(Array(norms[0].runningVariance.buffer) == Array(norms[1].runningVariance.buffer))
        let dy = randomTensor(y.shape, using: &generator)
        let (dx16, dx) = (norms[0].backward(dy), norms[1].backward(dy))
        #expect(Array(dx16.buffer) == Array(dx.buffer), "input gradient")
        let rounded = norms[0].backwardInBFloat16(dy).widened()
        #expect(Array(rounded.buffer) == dx.buffer.map { Float(bitPattern: UInt32(bfloat16Bits($0)) << 16) })
        // The first norm went backward twice: its parameters' gradients are twice the second's.
        #expect(Array(norms[0].weight.gradient.buffer) == norms[1].weight.gradient.buffer.map { $0 * 2 })
        #expect(Array(norms[0].bias.gradient.buffer) == norms[1].bias.gradient.buffer.map { $0 * 2 })
    }
}
