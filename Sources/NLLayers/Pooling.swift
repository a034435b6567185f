import NLTensor

/// Max pooling over (T, H, W), as `torch.nn.MaxPool3d` (floor mode; padded positions never win;
/// ties go to the first position in (t, h, w) order, NaN wins, as PyTorch's CPU kernel).
public final class MaxPool3d: Layer {
    public let kernelSize: Size3
    public let stride: Size3
    public let padding: Size3

    private var inputShape: [Int] = [], outputShape: [Int] = []
    /// For each output element, the input position (within its sample) that won.
    private var winners: [Int32] = []

    public init(kernelSize: Size3, stride: Size3? = nil, padding: Size3 = Size3(0)) {
        precondition(
            padding.t * 2 <= kernelSize.t && padding.h * 2 <= kernelSize.h && padding.w * 2 <= kernelSize.w,
            "MaxPool3d padding \(padding) must be at most half the kernel \(kernelSize)")
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
        self.padding = padding
    }

    public func outputShape(for s: [Int]) -> [Int] {
        precondition(s.count == 5, "MaxPool3d expects (N, T, H, W, C), got \(s)")
        let out = [
            slidingOutputLength(s[1], kernel: kernelSize.t, stride: stride.t, padding: padding.t),
            slidingOutputLength(s[2], kernel: kernelSize.h, stride: stride.h, padding: padding.h),
            slidingOutputLength(s[3], kernel: kernelSize.w, stride: stride.w, padding: padding.w),
        ]
        precondition(out.allSatisfy { $0 > 0 }, "MaxPool3d kernel \(kernelSize) does not fit input \(s)")
        return [s[0]] + out + [s[4]]
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let shape = outputShape(for: x.shape)
        let y = Tensor(transient: shape)
        (inputShape, outputShape) = (x.shape, shape)
        if winners.count != y.count { winners = [Int32](repeating: 0, count: y.count) }
        let (tIn, hIn, wIn, c) = (x.shape[1], x.shape[2], x.shape[3], x.shape[4])
        let (tOut, hOut, wOut) = (shape[1], shape[2], shape[3])
        let samplePositions = tIn * hIn * wIn
        winners.withUnsafeMutableBufferPointer { win in
            let winner = win.baseAddress!
            Parallel.forRanges(y.rows) { _, rows in
                for r in rows {
                    var rest = r
                    let wo = rest % wOut; rest /= wOut
                    let ho = rest % hOut; rest /= hOut
                    let to = rest % tOut; let s = rest / tOut
                    let (t0, h0, w0) = (to * stride.t - padding.t, ho * stride.h - padding.h, wo * stride.w - padding.w)
                    let (ts, hs, ws) = (max(t0, 0), max(h0, 0), max(w0, 0))
                    let (te, he, we) = (
                        min(t0 + kernelSize.t, tIn), min(h0 + kernelSize.h, hIn), min(w0 + kernelSize.w, wIn)
                    )
                    let out = y.data + r * c, best = winner + r * c
                    let first = Int32((ts * hIn + hs) * wIn + ws)
                    let sample = x.data + s * samplePositions * c
                    // Eight channels at a time, the window's maximum kept in registers.
                    var j = 0
                    while j + 8 <= c {
                        var (m, b) = (Float8(repeating: -.infinity), SIMD8<Int32>(repeating: first))
                        for t in ts..<te {
                            for h in hs..<he {
                                for w in ws..<we {
                                    let position = (t * hIn + h) * wIn + w
                                    let v = (sample + position * c).load8(j)
                                    let wins = (v .> m) .| (v .!= v)
                                    m.replace(with: v, where: wins)
                                    b.replace(with: SIMD8(repeating: Int32(position)), where: wins)
                                }
                            }
                        }
                        out.store8(m, j)
                        best.store8(b, j)
                        j += 8
                    }
                    let tail = j
                    for k in tail..<c { out[k] = -.infinity; best[k] = first }
                    for t in ts..<te {
                        for h in hs..<he {
                            for w in ws..<we {
                                let position = (t * hIn + h) * wIn + w
                                let v = sample + position * c
                                for k in tail..<c where v[k] > out[k] || v[k].isNaN {
                                    out[k] = v[k]
                                    best[k] = Int32(position)
                                }
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(dy.shape == outputShape, "MaxPool3d.backward got \(dy.shape), output was \(outputShape)")
        let dx = Tensor(transient: inputShape)
        let c = inputShape[4], samplePositions = inputShape[1] * inputShape[2] * inputShape[3]
        let (outputPositions, frameRows) = (dy.rows / inputShape[0], outputShape[2] * outputShape[3])
        let (from, into) = (dy.data, dx.data)
        dx.zero()
        winners.withUnsafeBufferPointer { win in
            let winner = win.baseAddress!
            /// Adds the gradient of output rows `rows`, channels `channels`, where it came from.
            func scatter(rows: Range<Int>, channels: Range<Int>) {
                for r in rows {
                    let (sample, g, w) = (
                        into + r / outputPositions * samplePositions * c, from + r * c, winner + r * c
                    )
                    for j in channels { sample[Int(w[j]) * c + j] += g[j] }
                }
            }
            if kernelSize.t <= stride.t {
                // Windows of different output frames share no input frame (both of the
                // network's pools): threads take whole output frames.
                Parallel.forRanges(dy.rows / frameRows) { _, frames in
                    scatter(rows: (frames.lowerBound * frameRows)..<(frames.upperBound * frameRows), channels: 0..<c)
                }
            } else {
                // Windows overlap across frames, so threads split the channels, never the positions.
                Parallel.forRanges(c) { _, channels in scatter(rows: 0..<dy.rows, channels: channels) }
            }
        }
        return dx
    }
}

/// Mean over (T, H, W): (N, T, H, W, C) to (N, C).
public final class GlobalAveragePool: Layer {
    private var inputShape: [Int] = []

    public init() {}

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let (n, c) = (x.shape[0], x.channels)
        let y = Tensor(transient: [n, c])
        inputShape = x.shape
        let positions = x.rows / n
        Parallel.forEach(n) { s in
            let out = y.data + s * c
            var sums = [Double](repeating: 0, count: c)
            for p in 0..<positions {
                let row = x.data + (s * positions + p) * c
                for j in 0..<c { sums[j] += Double(row[j]) }
            }
            for j in 0..<c { out[j] = Float(sums[j] / Double(positions)) }
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let dx = Tensor(transient: inputShape)
        let (n, c) = (inputShape[0], inputShape[4])
        let positions = dx.rows / n
        let scale = 1 / Float(positions)
        Parallel.forRanges(dx.rows) { _, rows in
            for r in rows {
                let (g, d) = (dy.data + (r / positions) * c, dx.data + r * c)
                for j in 0..<c { d[j] = g[j] * scale }
            }
        }
        return dx
    }
}
