import NLTensor

/// A convolution over few input channels (a network's first layer: 3 colour channels into a
/// 5x7x7 kernel) computed in place, without vol2col.
///
/// Through vol2col each output row becomes a column of taps x Cin values (735 in the stem) that
/// is written once and packed once more by OpenBLAS, and each value then serves only Cout (64)
/// multiply-adds: the copies cost a third of the layer. Here each tap reads the input where it
/// lies (a kernel row's kW x Cin values are contiguous in channels-last input) into a register
/// block of 6 output positions x 16 channels. The loops are 8 floats wide (AVX2): they are used
/// when the build has AVX2 and OpenBLAS runs no wider kernels. Where it runs AVX-512 ones,
/// vol2col and their 16-float FMAs are kept (not yet measured against these loops: no such
/// machine since they were written).
extension Conv3d {
    /// Output channels per register block: 2 vectors of 8.
    static let channelBlock = 16

    /// Whether the direct loops can run this convolution: whole register blocks of channels.
    static func directLoopsFit(_ outputChannels: Int) -> Bool {
        outputChannels % channelBlock == 0
    }

    /// Whether they beat vol2col on this machine, for few input channels: the build has AVX2+FMA
    /// and OpenBLAS's kernels are no wider.
    static func directLoopsPay(_ inputChannels: Int) -> Bool {
        inputChannels <= 4 && BuildTarget.level >= 3 && !BLASKernel.isAVX512(BLASKernel.current, on: .current)
    }

    /// y (zeroed here) = the convolution of x, a row of output positions at a time.
    func forwardDirect(_ x: Tensor, _ y: Tensor, _ g: Geometry) {
        let (cout, interior) = (outputChannels, interiorPositions(g))
        Parallel.forRanges(g.n * g.tOut * g.hOut) { _, outputRows in
            for row in outputRows {
                let out = y.data + row * g.wOut * cout
                out.update(repeating: 0, count: g.wOut * cout)
                forEachKernelRow(x, g, outputRow: row) { input, taps in
                    for block in Swift.stride(from: 0, to: cout, by: Conv3d.channelBlock) {
                        accumulateOutputs(input: input, taps: taps + block, outputs: out + block, interior, g)
                    }
                }
            }
        }
    }

    /// dW += the weight gradient, from per-thread partial sums added in a fixed order.
    func weightGradientDirect(_ x: Tensor, _ dy: Tensor, _ g: Geometry) {
        let (cout, interior) = (outputChannels, interiorPositions(g))
        let (chunks, partials) = (Parallel.split(g.n * g.tOut * g.hOut), weightPartials())
        Parallel.forEach(chunks.count) { chunk in
            let partial = partials[chunk].data
            for row in chunks[chunk] {
                let gradient = dy.data + row * g.wOut * cout
                forEachKernelRow(x, g, outputRow: row) { input, taps in
                    let tapGradient = partial + weight.value.data.distance(to: taps)
                    for block in Swift.stride(from: 0, to: cout, by: Conv3d.channelBlock) {
                        accumulateWeightGradient(input: input, gradients: gradient + block, into: tapGradient + block, interior, g)
                    }
                }
            }
        }
        addToWeightGradient(partials)
    }

    /// For output row `row` (sample, frame, height), each (kt, kh) whose input row exists: the
    /// input row, and the weights of its kW x Cin taps, Cout floats each.
    @inline(__always)
    private func forEachKernelRow(_ x: Tensor, _ g: Geometry, outputRow row: Int, _ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        let (s, to, ho) = (row / (g.tOut * g.hOut), row / g.hOut % g.tOut, row % g.hOut)
        let rowTaps = kernelSize.w * inputChannels * outputChannels
        for kt in 0..<kernelSize.t {
            let ti = to * stride.t - padding.t + kt
            guard ti >= 0 && ti < g.tIn else { continue }
            for kh in 0..<kernelSize.h {
                let hi = ho * stride.h - padding.h + kh
                guard hi >= 0 && hi < g.hIn else { continue }
                body(x.data + ((s * g.tIn + ti) * g.hIn + hi) * g.wIn * inputChannels,
                     weight.value.data + (kt * kernelSize.h + kh) * rowTaps)
            }
        }
    }

    /// The taps of a kernel row (kW x Cin, from 0) that fall inside the input row for output
    /// position `wo`.
    @inline(__always)
    private func insideTaps(_ wo: Int, _ g: Geometry) -> Range<Int> {
        let start = wo * stride.w - padding.w
        let low = max(0, -start) * inputChannels
        return low..<max(low, min(kernelSize.w, g.wIn - start) * inputChannels)
    }

    /// The output positions whose every tap reads inside the input row: wo * s - p >= 0 and
    /// wo * s - p + k <= W.
    private func interiorPositions(_ g: Geometry) -> Range<Int> {
        let first = min(g.wOut, (padding.w + stride.w - 1) / stride.w)
        let end = g.wIn + padding.w - kernelSize.w < 0 ? 0 : min(g.wOut, (g.wIn + padding.w - kernelSize.w) / stride.w + 1)
        return first..<max(first, end)
    }

    /// outputs[wo][0..<16] += sum over taps j of input[wo's window][j] * taps[j][0..<16], for every
    /// output position of the row: six interior positions at a time (12 accumulators, 2 weight
    /// vectors and a broadcast: AVX2's 16 registers without spilling), edges one at a time.
    @inline(__always)
    private func accumulateOutputs(input: UnsafeMutablePointer<Float>, taps: UnsafeMutablePointer<Float>,
                                   outputs: UnsafeMutablePointer<Float>, _ interior: Range<Int>, _ g: Geometry) {
        let (cout, step, width) = (outputChannels, stride.w * inputChannels, kernelSize.w * inputChannels)
        var wo = 0
        while wo < g.wOut {
            let x0 = input + (wo * stride.w - padding.w) * inputChannels
            if interior.contains(wo) && interior.contains(wo + 5) {
                let o = outputs + wo * cout
                var (a0, a1) = (o.load8(0), o.load8(8)), (b0, b1) = (o.load8(cout), o.load8(cout + 8))
                var (c0, c1) = (o.load8(2 * cout), o.load8(2 * cout + 8)), (d0, d1) = (o.load8(3 * cout), o.load8(3 * cout + 8))
                var (e0, e1) = (o.load8(4 * cout), o.load8(4 * cout + 8)), (f0, f1) = (o.load8(5 * cout), o.load8(5 * cout + 8))
                for j in 0..<width {
                    let (w, x) = (taps + j * cout, x0 + j)
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
                o.store8(a0, 0); o.store8(a1, 8); o.store8(b0, cout); o.store8(b1, cout + 8)
                o.store8(c0, 2 * cout); o.store8(c1, 2 * cout + 8); o.store8(d0, 3 * cout); o.store8(d1, 3 * cout + 8)
                o.store8(e0, 4 * cout); o.store8(e1, 4 * cout + 8); o.store8(f0, 5 * cout); o.store8(f1, 5 * cout + 8)
                wo += 6
            } else {
                let o = outputs + wo * cout
                var (a0, a1) = (o.load8(0), o.load8(8))
                for j in insideTaps(wo, g) {
                    let (w, u) = (taps + j * cout, Float8(repeating: x0[j]))
                    a0 = a0.addingProduct(u, w.load8(0)); a1 = a1.addingProduct(u, w.load8(8))
                }
                o.store8(a0, 0); o.store8(a1, 8)
                wo += 1
            }
        }
    }

    /// into[j][0..<16] += sum over the row's output positions wo of input[wo's window][j] *
    /// gradients[wo][0..<16], for every tap j of the kernel row: six taps at a time over the
    /// interior positions (12 accumulators), then the edges' inside taps one at a time.
    @inline(__always)
    private func accumulateWeightGradient(input: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>,
                                          into: UnsafeMutablePointer<Float>, _ interior: Range<Int>, _ g: Geometry) {
        let (cout, step, width) = (outputChannels, stride.w * inputChannels, kernelSize.w * inputChannels)
        let (first, end) = (interior.lowerBound, interior.upperBound)
        var j = 0
        while j < width {
            // A last group of fewer than six taps repeats its last tap; the repeats are not stored.
            let last = width - 1
            let (j1, j2, j3, j4, j5) = (min(j + 1, last), min(j + 2, last), min(j + 3, last), min(j + 4, last), min(j + 5, last))
            var (a0, a1, b0, b1, c0, c1) = (Float8(), Float8(), Float8(), Float8(), Float8(), Float8())
            var (d0, d1, e0, e1, f0, f1) = (Float8(), Float8(), Float8(), Float8(), Float8(), Float8())
            var (x, d) = (input + (first * stride.w - padding.w) * inputChannels, gradients + first * cout)
            for _ in first..<end {
                let (g0, g1) = (d.load8(0), d.load8(8))
                var u = Float8(repeating: x[j])
                a0 = a0.addingProduct(u, g0); a1 = a1.addingProduct(u, g1)
                u = Float8(repeating: x[j1])
                b0 = b0.addingProduct(u, g0); b1 = b1.addingProduct(u, g1)
                u = Float8(repeating: x[j2])
                c0 = c0.addingProduct(u, g0); c1 = c1.addingProduct(u, g1)
                u = Float8(repeating: x[j3])
                d0 = d0.addingProduct(u, g0); d1 = d1.addingProduct(u, g1)
                u = Float8(repeating: x[j4])
                e0 = e0.addingProduct(u, g0); e1 = e1.addingProduct(u, g1)
                u = Float8(repeating: x[j5])
                f0 = f0.addingProduct(u, g0); f1 = f1.addingProduct(u, g1)
                (x, d) = (x + step, d + cout)
            }
            func add(_ tap: Int, _ s0: Float8, _ s1: Float8) {
                let t = into + tap * cout
                t.store8(t.load8(0) + s0, 0); t.store8(t.load8(8) + s1, 8)
            }
            add(j, a0, a1)
            if j1 > j { add(j1, b0, b1) }
            if j2 > j1 { add(j2, c0, c1) }
            if j3 > j2 { add(j3, d0, d1) }
            if j4 > j3 { add(j4, e0, e1) }
            if j5 > j4 { add(j5, f0, f1) }
            j += 6
        }
        func addEdge(_ wo: Int) {
            let (x, d) = (input + (wo * stride.w - padding.w) * inputChannels, gradients + wo * cout)
            let (g0, g1) = (d.load8(0), d.load8(8))
            for j in insideTaps(wo, g) {
                let (t, u) = (into + j * cout, Float8(repeating: x[j]))
                t.store8(t.load8(0).addingProduct(u, g0), 0); t.store8(t.load8(8).addingProduct(u, g1), 8)
            }
        }
        for wo in 0..<first { addEdge(wo) }
        for wo in end..<g.wOut { addEdge(wo) }
    }
}
