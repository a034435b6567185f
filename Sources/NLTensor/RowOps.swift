/// Element-wise and per-channel operations on tensors seen as (rows, C) matrices, parallel over
/// rows. Reductions sum per-thread partials in Double, in a fixed order.

/// Adds the column sums of `matrix` (rows x C) into `sums` (C).
public func addColumnSums(of matrix: Tensor, into sums: UnsafeMutablePointer<Float>) {
    let c = matrix.channels
    let partials = columnSumPartials(rows: matrix.rows, channels: c) { r, acc in
        let row = matrix.data + r * c
        for j in 0..<c { acc[j] += Double(row[j]) }
    }
    for j in 0..<c { sums[j] += Float(partials[j]) }
}

/// Sums, per column, `accumulate(row, partial)` over all rows, `width` x C sums in all: each
/// thread fills a Double partial for a range of rows; the partials are then added in range
/// order, so results do not depend on timing.
@inlinable
public func columnSumPartials(
    rows: Int, channels c: Int, width: Int = 1,
    _ accumulate: (Int, UnsafeMutablePointer<Double>) -> Void
) -> [Double] {
    let ranges = Parallel.split(rows, minimumChunk: 256), n = c * width
    var partials = [Double](repeating: 0, count: max(ranges.count, 1) * n)
    partials.withUnsafeMutableBufferPointer { p in
        let base = p.baseAddress!
        Parallel.forEach(ranges.count) { chunk in
            for r in ranges[chunk] { accumulate(r, base + chunk * n) }
        }
    }
    var total = [Double](repeating: 0, count: n)
    for chunk in 0..<ranges.count {
        for j in 0..<n { total[j] += partials[chunk * n + j] }
    }
    return total
}

/// y[r, :] += vector for every row r of `matrix` (rows x C).
public func addToEveryRow(_ matrix: Tensor, _ vector: UnsafePointer<Float>) {
    let c = matrix.channels
    Parallel.forRanges(matrix.rows, minimumChunk: 256) { _, rows in
        for r in rows {
            let row = matrix.data + r * c
            for j in 0..<c { row[j] += vector[j] }
        }
    }
}

/// Runs `body(range)` over disjoint ranges of 0..<count in parallel: for element-wise loops.
public func forEachElementRange(_ count: Int, _ body: (Range<Int>) -> Void) {
    Parallel.forRanges(count, minimumChunk: 1 << 14) { _, range in body(range) }
}

/// out = a + b, element-wise (out may be a or b).
public func add(_ a: Tensor, _ b: Tensor, into out: Tensor) {
    precondition(a.count == b.count && a.count == out.count, "adding \(a.shape) and \(b.shape) into \(out.shape)")
    let (pa, pb, po) = (a.data, b.data, out.data)
    forEachElementRange(a.count) { range in
        for i in range { po[i] = pa[i] + pb[i] }
    }
}

/// The largest absolute difference relative to the largest magnitude of the reference:
/// max|a - b| / max|b|. Per-element ratios would blow up on elements that are nearly zero.
/// Infinite where either holds a NaN (`max` would pass over one: max(0, .nan) is 0).
public func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.count == b.count, "comparing \(a.shape) with \(b.shape)")
    var difference: Float = 0, scale: Float = 0
    for i in 0..<a.count {
        let d = abs(a.data[i] - b.data[i])
        if d.isNaN { return .infinity }
        difference = max(difference, d)
        scale = max(scale, abs(b.data[i]))
    }
    return scale == 0 ? difference : difference / scale
}
