import NLTensor

#if canImport(Glibc)
    import Glibc
#endif

/// In-place softmax of each row of a (rows x columns) matrix: exp(x - max) / sum, summed in Double.
public func softmaxRows(_ m: UnsafeMutablePointer<Float>, rows: Int, columns: Int) {
    Parallel.forRanges(rows, minimumChunk: 8) { _, range in
        for r in range {
            let row = m + r * columns
            var top = -Float.infinity
            for j in 0..<columns { top = max(top, row[j]) }
            var sum = 0.0
            for j in 0..<columns {
                row[j] = expf(row[j] - top)
                sum += Double(row[j])
            }
            let inverse = Float(1 / sum)
            for j in 0..<columns { row[j] *= inverse }
        }
    }
}
