import Foundation
import NLTensor

/// Every other kernel: vol2col into tiles of rows that stay in cache, one GEMM a tile.
extension Conv3d {
    var columnWidth: Int { kernelSize.volume * inputChannels }

    /// Output rows per column tile: the budget's worth, and at least 256, which wide columns
    /// (4608 in res5) need to run near OpenBLAS's best rate (measured: 61 GFLOP/s a thread at 113
    /// rows, 80 at 448). Tiles run across frames: late stages have frames of a few rows.
    var tileRows: Int { max(256, Conv3d.tileBudget / columnWidth) }

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
    func forEachTile(_ rows: Range<Int>, _ body: (Range<Int>) -> Void) {
        for r0 in Swift.stride(from: rows.lowerBound, to: rows.upperBound, by: tileRows) {
            body(r0..<min(r0 + tileRows, rows.upperBound))
        }
    }

    /// Whether all output rows make one tile: the late stages' few positions (32 rows of 4608
    /// taps in res5 at 112x112). Their GEMMs then run once, split by GEMM over columns or taps;
    /// split by rows, each thread would multiply 16 rows, at a third of the rate.
    func isOneTile(_ g: Geometry) -> Bool { g.outputRows <= tileRows }

    func forwardTiled(_ x: Tensor, _ y: Tensor, _ g: Geometry) {
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

    func backwardTiled(
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
    func forEachFrame(_ g: Geometry, rows: Range<Int>, _ body: (Int, Range<Int>, Int) -> Void) {
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
    func forEachRun(_ g: Geometry, frame: Int, rows: Range<Int>, _ body: (Int, Int, Int?, Range<Int>) -> Void) {
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
    func fillColumns(_ x: Tensor, _ g: Geometry, rows: Range<Int>, into col: UnsafeMutablePointer<Float>) {
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
    func scatterColumns(_ dcol: UnsafeMutablePointer<Float>, _ g: Geometry, rows: Range<Int>, into dx: Tensor) {
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
