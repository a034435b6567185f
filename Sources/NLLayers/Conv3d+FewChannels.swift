import NLTensor

/// A convolution over few input channels (a network's first layer: 3 colour channels into a
/// 5x7x7 kernel) computed in place, without vol2col.
///
/// Through vol2col each output row becomes a column of taps x Cin values (735 in the stem) that
/// is written once and packed once more by OpenBLAS, and each value then serves only Cout (64)
/// multiply-adds: the copies cost a third of the layer. Here each tap reads the input where it
/// lies (a kernel row's kW x Cin values are contiguous in channels-last input) into a register
/// block of 6 output positions x 16 channels, from a copy of the input padded along the width so
/// that no window needs an edge case. The loops are 8 floats wide (AVX2): they are used
/// when the build has AVX2 and OpenBLAS runs no wider kernels, or runs AVX-512 ones on a CPU
/// that executes 512-bit operations as two 256-bit halves (AMD's Zen 4), where 16-float FMAs do
/// no more a cycle than these. There, in nl_i3d_r50's float32 step at 2x8x224 (2 threads, AMD
/// EPYC Zen 4, OpenBLAS 0.3.21 SkylakeX), the stem's forward and weight gradient took 84-86 ms
/// against 125-126 ms through vol2col, and the step 0.623-0.640 s against 0.672-0.716 s (three
/// paired rounds). Where AVX-512 runs at full width (Intel's Xeons, AMD's Zen 5), vol2col and
/// OpenBLAS's 16-float kernels are kept: not yet measured against these loops there.
extension Conv3d {
    /// Output channels per register block: 2 vectors of 8.
    static let channelBlock = 16

    /// Whether the direct loops can run this convolution: whole register blocks of channels.
    static func directLoopsFit(_ outputChannels: Int) -> Bool {
        outputChannels % channelBlock == 0
    }

    /// Whether they beat vol2col on this machine, for few input channels: the build has AVX2+FMA
    /// and OpenBLAS's kernels are no wider, or no faster (see the type's comment).
    static func directLoopsPay(_ inputChannels: Int) -> Bool {
        let cpu = CPUFeatures.current
        return inputChannels <= 4 && BuildTarget.level >= 3
            && (!BLASKernel.isAVX512(BLASKernel.current, on: cpu) || cpu.halvesAVX512)
    }

    /// Output positions per register block in the forward loops.
    static let positionBlock = 6

    /// y = the convolution of x, a row of output positions at a time: each block of 6 positions x
    /// 16 channels stays in registers over every tap of the kernel and is stored once.
    func forwardDirect(_ x: Tensor, _ y: Tensor, _ g: Geometry) {
        let (cout, padded) = (outputChannels, widthPadded(x, g))
        let (taps, step) = (kernelSize.w * inputChannels, stride.w * inputChannels)
        // The weight per block of 16 output channels, tap after tap, so a block's loop reads its
        // weights in order (47 KB in the stem) rather than 64 bytes every Cout floats. Measured in
        // the stem's forward alone at 1x32x224: medians 145-148 ms against 163-176 unpacked.
        let allTaps = kernelSize.volume * inputChannels, block = Conv3d.channelBlock
        let packed = Tensor(transient: [cout / block, allTaps, block])
        for b in 0..<(cout / block) {
            for t in 0..<allTaps {
                (packed.data + (b * allTaps + t) * block).update(
                    from: weight.value.data + t * cout + b * block, count: block)
            }
        }
        Parallel.forRanges(g.n * g.tOut * g.hOut) { _, outputRows in
            withKernelRows { rows in
                withUnsafeTemporaryAllocation(of: TapOffsets.self, capacity: kernelSize.t * kernelSize.h * taps) {
                    buffer in
                    let offsets = buffer.baseAddress!
                    for row in outputRows {
                        // One flat list of every tap's input and weight offsets: a single loop
                        // keeps the accumulators in registers (nested loops spilled them).
                        let kernelRowCount = kernelRows(padded, g, outputRow: row, into: rows)
                        let base = kernelRowCount > 0 ? rows[0].input : padded.data
                        var count = 0
                        for r in 0..<kernelRowCount {
                            let (input, weights) = (
                                base.distance(to: rows[r].input),
                                weight.value.data.distance(to: rows[r].taps) / cout * block
                            )
                            for j in 0..<taps {
                                offsets[count] = (Int32(input + j), Int32(weights + j * block))
                                count += 1
                            }
                        }
                        let out = y.data + row * g.wOut * cout
                        for block in Swift.stride(from: 0, to: cout, by: Conv3d.channelBlock) {
                            for wo in Swift.stride(from: 0, to: g.wOut, by: Conv3d.positionBlock) {
                                sixPositions(
                                    offsets, count, input: base + wo * step, weights: packed.data + block * allTaps,
                                    step: step, into: out + wo * cout + block,
                                    storing: min(Conv3d.positionBlock, g.wOut - wo))
                            }
                        }
                    }
                }
            }
        }
    }

    /// Where a tap reads its input (from the output row's first input row, so that it fits 32 bits
    /// at any batch size) and its Cout weights (from the weight's start).
    typealias TapOffsets = (input: Int32, weights: Int32)

    /// dW += the weight gradient, from per-thread partial sums added in a fixed order.
    func weightGradientDirect(_ x: Tensor, _ dy: Tensor, _ g: Geometry) {
        // The padded input is made again rather than kept from forward, which would hold it (10 MB
        // at 2x8x224) through the whole step; making it is one pass over the input.
        let (cout, padded) = (outputChannels, widthPadded(x, g))
        let (taps, step) = (kernelSize.w * inputChannels, stride.w * inputChannels)
        let (chunks, partials) = (Parallel.split(g.n * g.tOut * g.hOut), weightPartials())
        Parallel.forEach(chunks.count) { chunk in
            let partial = partials[chunk].data
            withKernelRows { rows in
                for row in chunks[chunk] {
                    let gradient = dy.data + row * g.wOut * cout
                    for r in 0..<kernelRows(padded, g, outputRow: row, into: rows) {
                        let (input, into) = (rows[r].input, partial + weight.value.data.distance(to: rows[r].taps))
                        for block in Swift.stride(from: 0, to: cout, by: Conv3d.channelBlock) {
                            var j = 0
                            while taps - j >= 6 {
                                sixTaps(
                                    input + j, gradient + block, into: into + j * cout + block, positions: g.wOut,
                                    step: step)
                                j += 6
                            }
                            while j < taps {
                                threeTaps(
                                    input + j, gradient + block, into: into + j * cout + block, positions: g.wOut,
                                    step: step, count: min(3, taps - j))
                                j += 3
                            }
                        }
                    }
                }
            }
        }
        addToWeightGradient(partials)
    }

    /// An input row that a kernel row reads, and the kernel row's kW x Cin taps (Cout floats each).
    typealias KernelRow = (input: UnsafeMutablePointer<Float>, taps: UnsafeMutablePointer<Float>)

    /// Runs `body` with room for every kernel row.
    @inline(__always)
    private func withKernelRows(_ body: (UnsafeMutablePointer<KernelRow>) -> Void) {
        withUnsafeTemporaryAllocation(of: KernelRow.self, capacity: kernelSize.t * kernelSize.h) {
            body($0.baseAddress!)
        }
    }

    /// The kernel rows (kt, kh) whose input row exists for output row `row` (sample, frame,
    /// height) of the width-padded input, written into `rows`; returns their number.
    @inline(__always)
    private func kernelRows(
        _ padded: Tensor, _ g: Geometry, outputRow row: Int, into rows: UnsafeMutablePointer<KernelRow>
    ) -> Int {
        let (s, to, ho) = (row / (g.tOut * g.hOut), row / g.hOut % g.tOut, row % g.hOut)
        let (width, rowTaps) = (padded.shape[3] * inputChannels, kernelSize.w * inputChannels * outputChannels)
        var count = 0
        for kt in 0..<kernelSize.t {
            let ti = to * stride.t - padding.t + kt
            guard ti >= 0 && ti < g.tIn else { continue }
            for kh in 0..<kernelSize.h {
                let hi = ho * stride.h - padding.h + kh
                guard hi >= 0 && hi < g.hIn else { continue }
                rows[count] = (
                    padded.data + ((s * g.tIn + ti) * g.hIn + hi) * width,
                    weight.value.data + (kt * kernelSize.h + kh) * rowTaps
                )
                count += 1
            }
        }
        return count
    }

    /// x with its rows padded by zeros along the width: padding.w on the left, and on the right as
    /// many as the last block of 6 output positions reads, so no window needs an edge case.
    private func widthPadded(_ x: Tensor, _ g: Geometry) -> Tensor {
        let blocks = (g.wOut + Conv3d.positionBlock - 1) / Conv3d.positionBlock
        let width = max(padding.w + g.wIn, (blocks * Conv3d.positionBlock - 1) * stride.w + kernelSize.w)
        let padded = Tensor(transient: [g.n, g.tIn, g.hIn, width, inputChannels])
        let (cin, left) = (inputChannels, padding.w * inputChannels)
        Parallel.forRanges(g.n * g.tIn * g.hIn, minimumChunk: 64) { _, rows in
            for r in rows {
                let (from, to) = (x.data + r * g.wIn * cin, padded.data + r * width * cin)
                to.update(repeating: 0, count: left)
                (to + left).update(from: from, count: g.wIn * cin)
                (to + left + g.wIn * cin).update(repeating: 0, count: (width - g.wIn) * cin - left)
            }
        }
        return padded
    }

    /// out[p][0..<16] = sum over the taps i of input[offsets[i].input + p * step] *
    /// weights[offsets[i].weights ..< + 16], for 6 positions p, of which the first `storing` are
    /// stored: 12 accumulators, 2 weight vectors and a broadcast, AVX2's 16 registers.
    @inline(__always)
    private func sixPositions(
        _ offsets: UnsafeMutablePointer<TapOffsets>, _ count: Int, input: UnsafeMutablePointer<Float>,
        weights: UnsafeMutablePointer<Float>, step: Int, into out: UnsafeMutablePointer<Float>, storing: Int
    ) {
        let cout = outputChannels
        var (a0, a1, b0, b1, c0, c1) = (Float8(), Float8(), Float8(), Float8(), Float8(), Float8())
        var (d0, d1, e0, e1, f0, f1) = (Float8(), Float8(), Float8(), Float8(), Float8(), Float8())
        for i in 0..<count {
            let (w, x) = (weights + Int(offsets[i].weights), input + Int(offsets[i].input))
            let (w0, w1) = (w.load8(0), w.load8(8))
            var u = Float8(repeating: x[0])
            a0 = a0.addingProduct(u, w0); a1 = a1.addingProduct(u, w1)
            u = Float8(repeating: x[step])
            b0 = b0.addingProduct(u, w0); b1 = b1.addingProduct(u, w1)
            u = Float8(repeating: x[2 * step])
            c0 = c0.addingProduct(u, w0); c1 = c1.addingProduct(u, w1)
            u = Float8(repeating: x[3 * step])
            d0 = d0.addingProduct(u, w0); d1 = d1.addingProduct(u, w1)
            u = Float8(repeating: x[4 * step])
            e0 = e0.addingProduct(u, w0); e1 = e1.addingProduct(u, w1)
            u = Float8(repeating: x[5 * step])
            f0 = f0.addingProduct(u, w0); f1 = f1.addingProduct(u, w1)
        }
        func store(_ p: Int, _ s0: Float8, _ s1: Float8) {
            if p < storing { out.store8(s0, p * cout); out.store8(s1, p * cout + 8) }
        }
        store(0, a0, a1); store(1, b0, b1); store(2, c0, c1); store(3, d0, d1); store(4, e0, e1); store(5, f0, f1)
    }

    /// into[j][0..<16] += sum over output positions p of input[p * step + j] * gradients[p][0..<16],
    /// for 6 taps j: 12 accumulators.
    @inline(__always)
    private func sixTaps(
        _ input: UnsafeMutablePointer<Float>, _ gradients: UnsafeMutablePointer<Float>,
        into: UnsafeMutablePointer<Float>,
        positions: Int, step: Int
    ) {
        let cout = outputChannels
        var (a0, a1, b0, b1, c0, c1) = (Float8(), Float8(), Float8(), Float8(), Float8(), Float8())
        var (d0, d1, e0, e1, f0, f1) = (Float8(), Float8(), Float8(), Float8(), Float8(), Float8())
        var (x, d) = (input, gradients)
        for _ in 0..<positions {
            let (g0, g1) = (d.load8(0), d.load8(8))
            var u = Float8(repeating: x[0])
            a0 = a0.addingProduct(u, g0); a1 = a1.addingProduct(u, g1)
            u = Float8(repeating: x[1])
            b0 = b0.addingProduct(u, g0); b1 = b1.addingProduct(u, g1)
            u = Float8(repeating: x[2])
            c0 = c0.addingProduct(u, g0); c1 = c1.addingProduct(u, g1)
            u = Float8(repeating: x[3])
            d0 = d0.addingProduct(u, g0); d1 = d1.addingProduct(u, g1)
            u = Float8(repeating: x[4])
            e0 = e0.addingProduct(u, g0); e1 = e1.addingProduct(u, g1)
            u = Float8(repeating: x[5])
            f0 = f0.addingProduct(u, g0); f1 = f1.addingProduct(u, g1)
            (x, d) = (x + step, d + cout)
        }
        addSums(into, (a0, a1), (b0, b1), (c0, c1), count: 3)
        addSums(into + 3 * cout, (d0, d1), (e0, e1), (f0, f1), count: 3)
    }

    /// The same for the last `count` (at most 3) taps of a kernel row: 6 accumulators.
    @inline(__always)
    private func threeTaps(
        _ input: UnsafeMutablePointer<Float>, _ gradients: UnsafeMutablePointer<Float>,
        into: UnsafeMutablePointer<Float>,
        positions: Int, step: Int, count: Int
    ) {
        let cout = outputChannels
        // Fewer than 3 taps repeat the last one; the repeats are not stored.
        let (j1, j2) = (min(1, count - 1), min(2, count - 1))
        var (a0, a1, b0, b1, c0, c1) = (Float8(), Float8(), Float8(), Float8(), Float8(), Float8())
        var (x, d) = (input, gradients)
        for _ in 0..<positions {
            let (g0, g1) = (d.load8(0), d.load8(8))
            var u = Float8(repeating: x[0])
            a0 = a0.addingProduct(u, g0); a1 = a1.addingProduct(u, g1)
            u = Float8(repeating: x[j1])
            b0 = b0.addingProduct(u, g0); b1 = b1.addingProduct(u, g1)
            u = Float8(repeating: x[j2])
            c0 = c0.addingProduct(u, g0); c1 = c1.addingProduct(u, g1)
            (x, d) = (x + step, d + cout)
        }
        addSums(into, (a0, a1), (b0, b1), (c0, c1), count: count)
    }

    /// into[j][0..<16] += the j-th pair of sums, for the first `count` taps j of 3.
    @inline(__always)
    private func addSums(
        _ into: UnsafeMutablePointer<Float>, _ a: (Float8, Float8), _ b: (Float8, Float8), _ c: (Float8, Float8),
        count: Int
    ) {
        func add(_ j: Int, _ s: (Float8, Float8)) {
            let t = into + j * outputChannels
            t.store8(t.load8(0) + s.0, 0); t.store8(t.load8(8) + s.1, 8)
        }
        add(0, a)
        if count > 1 { add(1, b) }
        if count > 2 { add(2, c) }
    }
}
