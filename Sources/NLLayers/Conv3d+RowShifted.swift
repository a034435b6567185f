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

    /// The runs of rows a tap other than `center` maps: for each such tap and clip, the input's
    /// and the output's first row and the rows of the run.
    func forEachShiftedRun(
        _ g: Geometry, except center: Int?, _ body: (_ tap: Int, _ input: Int, _ output: Int, _ rows: Int) -> Void
    ) {
        let hw = g.hIn * g.wIn
        for kt in 0..<kernelSize.t where kt != center {
            let frames = validFrames(tap: kt, g)
            guard !frames.isEmpty else { continue }
            for s in 0..<g.n {
                body(
                    kt, (s * g.tIn + frames.lowerBound + kt - padding.t) * hw, (s * g.tOut + frames.lowerBound) * hw,
                    frames.count * hw)
            }
        }
    }

    func forwardRowShifted(_ x: Tensor, _ y: Tensor, _ g: Geometry) {
        let (cin, cout) = (inputChannels, outputChannels)
        let center = centerTap(g)
        if let c = center {
            GEMM.multiply(
                m: y.rows, n: cout, k: cin, a: x.data, lda: cin,
                b: weight.value.data + c * cin * cout, ldb: cout, c: y.data, ldc: cout)
        } else {
            y.zero()
        }
        forEachShiftedRun(g, except: center) { kt, input, output, rows in
            GEMM.multiply(
                m: rows, n: cout, k: cin, a: x.data + input * cin, lda: cin,
                b: weight.value.data + kt * cin * cout, ldb: cout, beta: 1, c: y.data + output * cout, ldc: cout)
        }
    }

    /// dW += the weight gradient, and dX = (with `accumulating`, +=) the input gradient.
    func backwardRowShifted(_ x: Tensor, _ dy: Tensor, _ dx: Tensor, _ g: Geometry, accumulating: Bool) {
        let (cin, cout) = (inputChannels, outputChannels)
        let center = centerTap(g)
        if weight.requiresGradient {
            if let c = center {  // dW_c += X^T dY over every row
                GEMM.multiply(
                    transposeA: true, m: cin, n: cout, k: x.rows, a: x.data, lda: cin,
                    b: dy.data, ldb: cout, beta: 1, c: weight.gradient.data + c * cin * cout, ldc: cout)
            }
            forEachShiftedRun(g, except: center) { kt, input, output, rows in
                GEMM.multiply(
                    transposeA: true, m: cin, n: cout, k: rows, a: x.data + input * cin, lda: cin,
                    b: dy.data + output * cout, ldb: cout, beta: 1, c: weight.gradient.data + kt * cin * cout, ldc: cout
                )
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
        forEachShiftedRun(g, except: center) { kt, input, output, rows in
            GEMM.multiply(
                transposeB: true, m: rows, n: cin, k: cout, a: dy.data + output * cout, lda: cout,
                b: weight.value.data + kt * cin * cout, ldb: cout, beta: 1, c: dx.data + input * cin, ldc: cin)
        }
    }
}
