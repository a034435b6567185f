/// Element-wise and per-channel operations on tensors seen as (rows, C) matrices, parallel over
/// rows. Reductions sum per-thread partials in Double, in a fixed order.

/// Adds the column sums of `matrix` (rows x C) into `sums` (C).
public func addColumnSums(of matrix: Tensor, into sums: UnsafeMutablePointer<Float>) {
    let c = matrix.channels
    let partials = columnSumPartials(rows: matrix.rows, channels: c) { rows, acc in
        for r in rows {
            let row = matrix.data + r * c
            for j in 0..<c { acc[j] += Double(row[j]) }
        }
    }
    for j in 0..<c { sums[j] += Float(partials[j]) }
}

/// Sums, per column, what `accumulate(rows, partial)` adds into a partial over ranges of rows
/// that cover all rows, `width` x C sums in all: each thread fills a Double partial for a range
/// of rows; the partials are then added in range order, so results do not depend on timing.
@inlinable
public func columnSumPartials(
    rows: Int, channels c: Int, width: Int = 1,
    _ accumulate: (Range<Int>, UnsafeMutablePointer<Double>) -> Void
) -> [Double] {
    let ranges = Parallel.split(rows, minimumChunk: 256), n = c * width
    var partials = [Double](repeating: 0, count: max(ranges.count, 1) * n)
    partials.withUnsafeMutableBufferPointer { p in
        let base = p.baseAddress!
        Parallel.forEach(ranges.count) { chunk in accumulate(ranges[chunk], base + chunk * n) }
    }
    var total = [Double](repeating: 0, count: n)
    for chunk in 0..<ranges.count {
        for j in 0..<n { total[j] += partials[chunk * n + j] }
    }
    return total
}

/// Two quantities per element whose column sums are wanted together (a BatchNorm's statistics,
/// or its gradient's): eight columns' at a time, and a single column's past the last multiple
/// of eight.
public protocol ColumnPairTerms {
    func terms(row: Int, columns j: Int) -> (SIMD8<Double>, SIMD8<Double>)
    func terms(row: Int, column j: Int) -> (Double, Double)
}

/// The column sums of both terms over all rows, in Double: C sums of the first, then C of the
/// second. Four rows' terms are added in registers before they join the partial sums, which a
/// load and a store of every partial for every row would otherwise bound: on a Zen 4, BatchNorm's
/// backward sums over NL I3D's shapes ran 1.3-2.6x faster so, except at 25088 x 256, where the
/// loop row by row streamed unusually fast (1.7-2.9 ms against 2.6-3.2 ms).
@inlinable
public func columnSumPairs<Terms: ColumnPairTerms>(rows: Int, channels c: Int, _ terms: Terms) -> [Double] {
    let vectors = c / 8 * 8
    return columnSumPartials(rows: rows, channels: c, width: 2) { range, first in
        let second = first + c
        let fours = range.lowerBound + range.count / 4 * 4
        for r in stride(from: range.lowerBound, to: fours, by: 4) {
            for j in stride(from: 0, to: vectors, by: 8) {
                let (a0, b0) = terms.terms(row: r, columns: j), (a1, b1) = terms.terms(row: r + 1, columns: j)
                let (a2, b2) = terms.terms(row: r + 2, columns: j), (a3, b3) = terms.terms(row: r + 3, columns: j)
                first.store8(first.load8(j) + ((a0 + a1) + (a2 + a3)), j)
                second.store8(second.load8(j) + ((b0 + b1) + (b2 + b3)), j)
            }
        }
        for r in fours..<range.upperBound {
            for j in stride(from: 0, to: vectors, by: 8) {
                let (a, b) = terms.terms(row: r, columns: j)
                first.store8(first.load8(j) + a, j)
                second.store8(second.load8(j) + b, j)
            }
        }
        for r in range {
            for j in vectors..<c {
                let (a, b) = terms.terms(row: r, column: j)
                first[j] += a
                second[j] += b
            }
        }
    }
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
