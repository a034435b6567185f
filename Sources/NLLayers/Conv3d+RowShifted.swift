import Foundation
import NLTensor

/// kT x 1 x 1 kernels (the temporal convolutions of I3D's bottlenecks): each tap one GEMM over
/// the rows shifted by its frames.
extension Conv3d {
    /// Output frames [t0, t1) that tap kt maps inside the input (stride 1 in time).
    func validFrames(tap kt: Int, _ g: Geometry) -> Range<Int> {
        max(0, padding.t - kt)..<min(g.tOut, g.tIn + padding.t - kt)
    }

    /// The tap that maps every output frame to the same input frame, if any: it covers all rows of
    /// the batch in one GEMM and initialises the result.
    func centerTap(_ g: Geometry) -> Int? {
        g.tOut == g.tIn && padding.t < kernelSize.t ? padding.t : nil
    }

    func forwardRowShifted(_ x: Tensor, _ y: Tensor, _ g: Geometry) {
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
    func backwardRowShifted(_ x: Tensor, _ dy: Tensor, _ dx: Tensor, _ g: Geometry, accumulating: Bool) {
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
}
