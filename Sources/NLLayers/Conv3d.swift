import NLTensor

/// 3D convolution over channels-last (N, T, H, W, C) activations, as `torch.nn.Conv3d`.
///
/// The weight is stored as (kT, kH, kW, Cin, Cout): one Cin x Cout matrix per kernel tap, so that
/// - a kT x 1 x 1 kernel with unit strides and no spatial padding (1x1x1 included) is kT GEMMs on
///   row-shifted views of the input, with no copy: output frame t reads input frame t + kt - pT;
/// - any other kernel goes through vol2col, built a tile of output rows at a time so the column
///   buffer stays bounded, and one GEMM per tile against the (taps * Cin) x Cout weight.
/// Checkpoints hold PyTorch's (Cout, Cin, kT, kH, kW).
public final class Conv3d: Layer {
    public let inputChannels: Int
    public let outputChannels: Int
    public let kernelSize: Size3
    public let stride: Size3
    public let padding: Size3
    public let weight: Parameter
    public let bias: Parameter?
    /// False for a network's first layer, whose input needs no gradient: backward then returns an
    /// empty tensor and skips that work.
    public var computesInputGradient = true
    /// Whether forward and the weight gradient run through the direct loops for few input channels
    /// (Conv3d+FewChannels.swift) instead of vol2col: chosen at init for the shape and this
    /// machine; tests set it both ways.
    public var usesDirectLoops: Bool {
        didSet {
            precondition(
                !usesDirectLoops || Conv3d.directLoopsFit(outputChannels),
                "direct loops need Cout a multiple of \(Conv3d.channelBlock)")
        }
    }

    private var input: Tensor?
    private var outputShape: [Int] = []

    /// Floats in one column tile: bounds the vol2col buffer of each thread.
    static let tileBudget = 1 << 19

    public init(
        inputChannels: Int, outputChannels: Int, kernelSize: Size3, stride: Size3 = Size3(1),
        padding: Size3 = Size3(0), bias: Bool = true
    ) {
        precondition(inputChannels > 0 && outputChannels > 0 && kernelSize.volume > 0, "empty convolution")
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        weight = Parameter(
            shape: [kernelSize.t, kernelSize.h, kernelSize.w, inputChannels, outputChannels], kind: .weight,
            checkpointShape: [outputChannels, inputChannels, kernelSize.t, kernelSize.h, kernelSize.w],
            fromCheckpointAxes: [2, 3, 4, 1, 0])
        self.bias = bias ? Parameter(shape: [outputChannels], kind: .bias) : nil
        usesDirectLoops = Conv3d.directLoopsPay(inputChannels) && Conv3d.directLoopsFit(outputChannels)
    }

    public var ownState: [(name: String, entry: StateEntry)] {
        [(name: "weight", entry: .parameter(weight))] + (bias.map { [(name: "bias", entry: .parameter($0))] } ?? [])
    }

    /// Whether the kernel reads whole input frames in place (see the type's comment).
    private var isRowShifted: Bool {
        kernelSize.h == 1 && kernelSize.w == 1 && stride == Size3(1) && padding.h == 0 && padding.w == 0
    }

    public func outputShape(for inputShape: [Int]) -> [Int] {
        precondition(
            inputShape.count == 5 && inputShape[4] == inputChannels,
            "Conv3d(\(inputChannels)->\(outputChannels)) got input \(inputShape); expected (N, T, H, W, \(inputChannels))"
        )
        let out = [
            slidingOutputLength(inputShape[1], kernel: kernelSize.t, stride: stride.t, padding: padding.t),
            slidingOutputLength(inputShape[2], kernel: kernelSize.h, stride: stride.h, padding: padding.h),
            slidingOutputLength(inputShape[3], kernel: kernelSize.w, stride: stride.w, padding: padding.w),
        ]
        precondition(out.allSatisfy { $0 > 0 }, "Conv3d kernel \(kernelSize) does not fit input \(inputShape)")
        return [inputShape[0]] + out + [outputChannels]
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let y = Tensor(transient: outputShape(for: x.shape))
        outputShape = y.shape
        input = x
        convolve(x, into: y)
        if let bias { addToEveryRow(y, bias.value.data) }
        return y
    }

    /// y = the convolution of x, without the bias.
    private func convolve(_ x: Tensor, into y: Tensor) {
        let g = Geometry(input: x.shape, output: y.shape)
        if isRowShifted {
            forwardRowShifted(x, y, g)
        } else if usesDirectLoops {
            forwardDirect(x, y, g)
        } else {
            forwardTiled(x, y, g)
        }
    }

    public func backward(_ dy: Tensor) -> Tensor { backward(dy, addingInputGradientTo: nil) }

    /// Backward, with the input gradient added to `sum` (which is returned) instead of written to
    /// a new tensor: how a residual block's first convolution joins its gradient to the
    /// shortcut's. The row-shifted GEMMs accumulate as they write, with no pass of their own;
    /// other kernels add their result.
    public func backward(_ dy: Tensor, addingInputGradientTo sum: Tensor?) -> Tensor {
        guard let x = input else { preconditionFailure("Conv3d.backward before forward") }
        precondition(dy.shape == outputShape, "Conv3d.backward got \(dy.shape), output was \(outputShape)")
        precondition(
            sum == nil || (computesInputGradient && sum!.shape == x.shape),
            "Conv3d.backward cannot add its input gradient to \(sum?.shape ?? [])")
        let accumulates = isRowShifted && sum != nil
        let dx = accumulates ? sum! : computesInputGradient ? Tensor(transient: x.shape) : Tensor(zeros: [0])
        let g = Geometry(input: x.shape, output: outputShape)
        if isRowShifted {
            backwardRowShifted(x, dy, dx, g, accumulating: accumulates)
        } else {
            let transposed = computesInputGradient ? inputGradientConvolution(rows: x.rows) : nil
            if usesDirectLoops && weight.requiresGradient { weightGradientDirect(x, dy, g) }
            let (weightByColumns, inputByColumns) = (
                !usesDirectLoops && weight.requiresGradient, computesInputGradient && transposed == nil
            )
            if weightByColumns || inputByColumns {
                backwardTiled(x, dy, dx, g, weightGradient: weightByColumns, inputGradient: inputByColumns)
            }
            transposed?.convolve(dy, into: dx)
        }
        if let bias, bias.requiresGradient { addColumnSums(of: dy, into: bias.gradient.data) }
        guard let sum, !accumulates else { return dx }
        add(sum, dx, into: sum)
        return sum
    }

    /// The input gradient of a stride-1 convolution is the stride-1 convolution of dY with the
    /// kernel flipped along time, height and width and its channels swapped, padded by k - 1 - p
    /// (nil where that is negative). Through vol2col of dY it is one GEMM a tile that writes dX
    /// once; the way back through columns writes dY Wᵀ, taps x Cin floats a row, and adds them
    /// into dX. Its kernel is rebuilt from the weight at each backward, which costs more than it
    /// saves below 4 x Cout rows (the late stages' few positions).
    private lazy var transposedConvolution: Conv3d? = {
        let p = Size3(kernelSize.t - 1 - padding.t, kernelSize.h - 1 - padding.h, kernelSize.w - 1 - padding.w)
        guard stride == Size3(1), p.t >= 0, p.h >= 0, p.w >= 0 else { return nil }
        return Conv3d(
            inputChannels: outputChannels, outputChannels: inputChannels, kernelSize: kernelSize, padding: p,
            bias: false)
    }()

    /// `transposedConvolution` with the current weight flipped into it, where it pays for `rows`.
    private func inputGradientConvolution(rows: Int) -> Conv3d? {
        guard rows >= 4 * outputChannels, let t = transposedConvolution else { return nil }
        // Flipping all three axes reverses the order of the taps; each tap's Cin x Cout matrix is
        // transposed, in blocks that stay in cache.
        let (cin, cout, taps, block) = (inputChannels, outputChannels, kernelSize.volume, 16)
        let (source, flipped) = (weight.value.data, t.weight.value.data)
        Parallel.forEach(taps) { tap in
            let (from, to) = (source + (taps - 1 - tap) * cin * cout, flipped + tap * cin * cout)
            for i0 in Swift.stride(from: 0, to: cin, by: block) {
                for j0 in Swift.stride(from: 0, to: cout, by: block) {
                    for i in i0..<min(i0 + block, cin) {
                        for j in j0..<min(j0 + block, cout) { to[j * cin + i] = from[i * cout + j] }
                    }
                }
            }
        }
        return t
    }

    struct Geometry {
        let n, tIn, hIn, wIn, tOut, hOut, wOut: Int
        init(input: [Int], output: [Int]) {
            (n, tIn, hIn, wIn) = (input[0], input[1], input[2], input[3])
            (tOut, hOut, wOut) = (output[1], output[2], output[3])
        }
        /// Output positions in the batch: the rows of the output matrix.
        var outputRows: Int { n * tOut * hOut * wOut }
    }

    // MARK: kT x 1 x 1 as row-shifted GEMMs

    /// Output frames [t0, t1) that tap kt maps inside the input (stride 1 in time).
    private func validFrames(tap kt: Int, _ g: Geometry) -> Range<Int> {
        max(0, padding.t - kt)..<min(g.tOut, g.tIn + padding.t - kt)
    }

    /// The tap that maps every output frame to the same input frame, if any: it covers all rows of
    /// the batch in one GEMM and initialises the result.
    private func centerTap(_ g: Geometry) -> Int? {
        g.tOut == g.tIn && padding.t < kernelSize.t ? padding.t : nil
    }

    private func forwardRowShifted(_ x: Tensor, _ y: Tensor, _ g: Geometry) {
        let (cin, cout, hw) = (inputChannels, outputChannels, g.hIn * g.wIn)
        let center = centerTap(g)
        if let c = center {
            GEMM.multiply(
                m: y.rows, n: cout, k: cin, a: x.data, lda: cin,
                b: weight.value.data + c * cin * cout, ldb: cout, c: y.data, ldc: cout)
        } else {
            y.zero()
        }
        for kt in 0..<kernelSize.t where kt != center {
            let frames = validFrames(tap: kt, g)
            guard !frames.isEmpty else { continue }
            for s in 0..<g.n {
                GEMM.multiply(
                    m: frames.count * hw, n: cout, k: cin,
                    a: x.data + ((s * g.tIn + frames.lowerBound + kt - padding.t) * hw) * cin, lda: cin,
                    b: weight.value.data + kt * cin * cout, ldb: cout, beta: 1,
                    c: y.data + ((s * g.tOut + frames.lowerBound) * hw) * cout, ldc: cout)
            }
        }
    }

    /// dW += the weight gradient, and dX = (with `accumulating`, +=) the input gradient.
    private func backwardRowShifted(_ x: Tensor, _ dy: Tensor, _ dx: Tensor, _ g: Geometry, accumulating: Bool) {
        let (cin, cout, hw) = (inputChannels, outputChannels, g.hIn * g.wIn)
        let center = centerTap(g)
        if weight.requiresGradient {
            for kt in 0..<kernelSize.t {
                let dW = weight.gradient.data + kt * cin * cout
                if kt == center {  // dW_kt += X^T dY over every row
                    GEMM.multiply(
                        transposeA: true, m: cin, n: cout, k: x.rows, a: x.data, lda: cin,
                        b: dy.data, ldb: cout, beta: 1, c: dW, ldc: cout)
                    continue
                }
                let frames = validFrames(tap: kt, g)
                guard !frames.isEmpty else { continue }
                for s in 0..<g.n {
                    GEMM.multiply(
                        transposeA: true, m: cin, n: cout, k: frames.count * hw,
                        a: x.data + ((s * g.tIn + frames.lowerBound + kt - padding.t) * hw) * cin, lda: cin,
                        b: dy.data + ((s * g.tOut + frames.lowerBound) * hw) * cout, ldb: cout,
                        beta: 1, c: dW, ldc: cout)
                }
            }
        }
        guard computesInputGradient else { return }
        if let c = center {  // dX = (or +=) dY W_c^T
            GEMM.multiply(
                transposeB: true, m: dx.rows, n: cin, k: cout, a: dy.data, lda: cout,
                b: weight.value.data + c * cin * cout, ldb: cout, beta: accumulating ? 1 : 0, c: dx.data, ldc: cin)
        } else if !accumulating {
            dx.zero()
        }
        for kt in 0..<kernelSize.t where kt != center {
            let frames = validFrames(tap: kt, g)
            guard !frames.isEmpty else { continue }
            for s in 0..<g.n {
                GEMM.multiply(
                    transposeB: true, m: frames.count * hw, n: cin, k: cout,
                    a: dy.data + ((s * g.tOut + frames.lowerBound) * hw) * cout, lda: cout,
                    b: weight.value.data + kt * cin * cout, ldb: cout, beta: 1,
                    c: dx.data + ((s * g.tIn + frames.lowerBound + kt - padding.t) * hw) * cin, ldc: cin)
            }
        }
    }

    // MARK: General kernels through vol2col tiles

    private var columnWidth: Int { kernelSize.volume * inputChannels }

    /// Output rows per column tile: the budget's worth, and at least 256, which wide columns
    /// (4608 in res5) need to run near OpenBLAS's best rate (measured: 61 GFLOP/s a thread at 113
    /// rows, 80 at 448). Tiles run across frames: late stages have frames of a few rows.
    private var tileRows: Int { max(256, Conv3d.tileBudget / columnWidth) }

    /// A buffer of `count` floats for each of `threads` threads, from the transient pool: the
    /// column tiles and weight partials of one call, whose pages the next convolution reuses.
    func buffers(count: Int, threads: Int = Parallel.threadCount) -> [Tensor] {
        (0..<threads).map { _ in Tensor(transient: [count]) }
    }

    /// A zeroed weight-gradient accumulator for each thread; `addToWeightGradient` sums them into
    /// dW in a fixed order, so results are reproducible for a given thread count.
    func weightPartials() -> [Tensor] {
        let partials = buffers(count: weight.value.count)
        for p in partials { p.zero() }
        return partials
    }

    func addToWeightGradient(_ partials: [Tensor]) {
        for p in partials { add(weight.gradient, p, into: weight.gradient) }
    }

    /// Calls `body` for each tile of at most `tileRows` of the output rows `rows` (global: frame
    /// after frame of the batch), with the tile's rows.
    private func forEachTile(_ rows: Range<Int>, _ body: (Range<Int>) -> Void) {
        for r0 in Swift.stride(from: rows.lowerBound, to: rows.upperBound, by: tileRows) {
            body(r0..<min(r0 + tileRows, rows.upperBound))
        }
    }

    /// Whether all output rows make one tile: the late stages' few positions (32 rows of 4608
    /// taps in res5 at 112x112). Their GEMMs then run once, split by GEMM over columns or taps;
    /// split by rows, each thread would multiply 16 rows, at a third of the rate.
    private func isOneTile(_ g: Geometry) -> Bool { g.outputRows <= tileRows }

    private func forwardTiled(_ x: Tensor, _ y: Tensor, _ g: Geometry) {
        let (cout, oneTile) = (outputChannels, isOneTile(g))
        let cols = buffers(count: tileRows * columnWidth, threads: oneTile ? 1 : Parallel.threadCount)
        // Buffers go in as tensors, not pointers: a parameter lives until the call returns.
        func forward(_ tile: Range<Int>, _ columns: Tensor) {
            let col = columns.data
            fillColumns(x, g, rows: tile, into: col)
            GEMM.multiply(
                m: tile.count, n: cout, k: columnWidth, a: col, lda: columnWidth,
                b: weight.value.data, ldb: cout, c: y.data + tile.lowerBound * cout, ldc: cout)
        }
        if oneTile { return forward(0..<g.outputRows, cols[0]) }
        Parallel.forRanges(g.outputRows) { chunk, rows in
            forEachTile(rows) { forward($0, cols[chunk]) }
        }
    }

    private func backwardTiled(
        _ x: Tensor, _ dy: Tensor, _ dx: Tensor, _ g: Geometry, weightGradient wantWeight: Bool,
        inputGradient wantInput: Bool
    ) {
        let (cout, frameRows, width, oneTile) = (outputChannels, g.hOut * g.wOut, columnWidth, isOneTile(g))
        // A tile's columns, then their gradient in the same buffer: dW has read them by then.
        let cols = buffers(count: tileRows * width, threads: oneTile ? 1 : Parallel.threadCount)
        func backward(_ tile: Range<Int>, _ columns: Tensor, _ dW: Tensor) {
            let (col, dyTile) = (columns.data, dy.data + tile.lowerBound * cout)
            if wantWeight {  // dW += col^T dY
                fillColumns(x, g, rows: tile, into: col)
                GEMM.multiply(
                    transposeA: true, m: width, n: cout, k: tile.count, a: col, lda: width,
                    b: dyTile, ldb: cout, beta: 1, c: dW.data, ldc: cout)
            }
            if wantInput {  // dcol = dY W^T, scattered back into dX
                GEMM.multiply(
                    transposeB: true, m: tile.count, n: width, k: cout, a: dyTile, lda: cout,
                    b: weight.value.data, ldb: cout, c: col, ldc: width)
                scatterColumns(col, g, rows: tile, into: dx)
            }
        }
        if wantInput { dx.zero() }
        if oneTile { return backward(0..<g.outputRows, cols[0], weight.gradient) }
        let partials = wantWeight ? weightPartials() : []
        // Output frames closer than `spacing` in time read overlapping input frames; frames of one
        // phase are `spacing` apart, so their scatter-adds into dX never collide as long as each
        // thread owns whole frames. With spacing 1 a thread's frames are consecutive and its tiles
        // run across them; otherwise a tile stays in one frame.
        let spacing = wantInput ? (kernelSize.t + stride.t - 1) / stride.t : 1
        for phase in 0..<spacing {
            let frames = (0..<(g.n * g.tOut)).filter { ($0 % g.tOut) % spacing == phase }
            Parallel.forRanges(frames.count) { chunk, range in
                let runs =
                    spacing == 1
                    ? [frames[range.lowerBound]..<(frames[range.upperBound - 1] + 1)]
                    : range.map { frames[$0]..<(frames[$0] + 1) }
                for run in runs {
                    forEachTile((run.lowerBound * frameRows)..<(run.upperBound * frameRows)) {
                        backward($0, cols[chunk], wantWeight ? partials[chunk] : weight.gradient)
                    }
                }
            }
        }
        addToWeightGradient(partials)
    }

    /// Visits the output rows `rows` (global) frame by frame: (frame, its rows within the frame,
    /// the offset of the first of them in `rows`).
    @inline(__always)
    private func forEachFrame(_ g: Geometry, rows: Range<Int>, _ body: (Int, Range<Int>, Int) -> Void) {
        let frameRows = g.hOut * g.wOut
        var r = rows.lowerBound
        while r < rows.upperBound {
            let (frame, start) = (r / frameRows, r % frameRows)
            let end = min(frameRows, start + rows.upperBound - r)
            body(frame, start..<end, r - rows.lowerBound)
            r += end - start
        }
    }

    /// Visits, for each output row of `rows` in frame `frame` and each (kt, kh) of the kernel, the
    /// row of kw taps as one run: (row offset in the tile, the run's first column, the input
    /// element offset of its first inside tap, and the inside taps kLow..<kHigh), or with a nil
    /// offset when the whole run is padding. Consecutive kw taps read consecutive input columns,
    /// so the inside part of a run is one contiguous block of (kHigh - kLow) * Cin floats.
    @inline(__always)
    private func forEachRun(_ g: Geometry, frame: Int, rows: Range<Int>, _ body: (Int, Int, Int?, Range<Int>) -> Void) {
        let (s, to, cin, kw) = (frame / g.tOut, frame % g.tOut, inputChannels, kernelSize.w)
        for r in rows {
            let (ho, wo) = (r / g.wOut, r % g.wOut)
            let wStart = wo * stride.w - padding.w
            let inside = max(0, -wStart)..<max(max(0, -wStart), min(kw, g.wIn - wStart))
            var column = 0
            for kt in 0..<kernelSize.t {
                let ti = to * stride.t - padding.t + kt
                for kh in 0..<kernelSize.h {
                    let hi = ho * stride.h - padding.h + kh
                    let valid = ti >= 0 && ti < g.tIn && hi >= 0 && hi < g.hIn && !inside.isEmpty
                    let offset =
                        valid ? (((s * g.tIn + ti) * g.hIn + hi) * g.wIn + wStart + inside.lowerBound) * cin : nil
                    body(r - rows.lowerBound, column, offset, inside)
                    column += kw * cin
                }
            }
        }
    }

    /// Fills the columns of the output rows `rows` (global) into `col`, a row of it per output row.
    private func fillColumns(_ x: Tensor, _ g: Geometry, rows: Range<Int>, into col: UnsafeMutablePointer<Float>) {
        let (cin, width, src, kw) = (inputChannels, columnWidth, x.data, kernelSize.w)
        forEachFrame(g, rows: rows) { frame, frameRows, first in
            forEachRun(g, frame: frame, rows: frameRows) { row, column, offset, inside in
                let dst = col + (first + row) * width + column
                guard let offset else { dst.update(repeating: 0, count: kw * cin); return }
                dst.update(repeating: 0, count: inside.lowerBound * cin)
                (dst + inside.lowerBound * cin).update(from: src + offset, count: inside.count * cin)
                (dst + inside.upperBound * cin).update(repeating: 0, count: (kw - inside.upperBound) * cin)
            }
        }
    }

    /// Adds the column gradients `dcol` of the output rows `rows` (global) back into dX.
    private func scatterColumns(_ dcol: UnsafeMutablePointer<Float>, _ g: Geometry, rows: Range<Int>, into dx: Tensor) {
        let (cin, width, dst) = (inputChannels, columnWidth, dx.data)
        forEachFrame(g, rows: rows) { frame, frameRows, first in
            forEachRun(g, frame: frame, rows: frameRows) { row, column, offset, inside in
                guard let offset else { return }
                let src = dcol + (first + row) * width + column + inside.lowerBound * cin
                for c in 0..<(inside.count * cin) { dst[offset + c] += src[c] }
            }
        }
    }
}
