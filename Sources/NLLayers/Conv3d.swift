import Dispatch
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

    /// How forward and backward compute: the run's precision (Layer.use), per convolution where
    /// bfloat16 was timed against float32 (ConvolutionChoices).
    public var algorithm = ConvolutionAlgorithm.own
    /// oneDNN's bfloat16 convolutions, one per input shape seen (training's and validation's).
    var bfloat16Convolutions: [[Int]: BFloat16Convolution] = [:]
    /// Seconds forward and backward took, summed while `Conv3d.measuresTime` (ConvolutionTuning).
    public var secondsSpent = 0.0
    nonisolated(unsafe) public static var measuresTime = false

    var input: Tensor?
    /// The last forward's shapes, kept inside Inference.run too (which keeps no input).
    var inputShape: [Int] = [], outputShape: [Int] = []

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

    /// The convolution and the input it last took, as "256->128 3x1x1 /1x1x1 +1x0x0 on 2x4x28x28".
    public var shapeDescription: String {
        let on = inputShape.isEmpty ? "" : " on " + inputShape.dropLast().map(String.init).joined(separator: "x")
        return "\(inputChannels)->\(outputChannels) \(kernelSize) /\(stride) +\(padding)\(on)"
    }

    public var ownState: [(name: String, entry: StateEntry)] {
        [(name: "weight", entry: .parameter(weight))] + (bias.map { [(name: "bias", entry: .parameter($0))] } ?? [])
    }

    /// Whether the kernel reads whole input frames in place (see the type's comment).
    var isRowShifted: Bool {
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
        timed {
            let y = Tensor(transient: outputShape(for: x.shape))
            (inputShape, outputShape) = (x.shape, y.shape)
            input = algorithm == .bfloat16 ? nil : Inference.kept(x)  // bfloat16 keeps its own copy
            switch algorithm {
            case .own: convolve(x, into: y)
            case .bfloat16: bfloat16Convolution(for: x.shape).run(x, weight.value, into: y)
            case .emulatedBFloat16:
                input = x.roundedToBFloat16()
                withWeightRoundedToBFloat16 { convolve(input!, into: y) }
            }
            if let bias { addToEveryRow(y, bias.value.data) }
            return y
        }
    }

    /// Forward in bfloat16 with the output written in bfloat16 (for a BatchNorm, ConvModule),
    /// for a convolution computing in bfloat16 without a bias; from float32 input, or from input
    /// already in bfloat16 (a BatchNorm's forwardToBFloat16), which it reads and keeps as it is.
    public func forwardInBFloat16(_ x: Tensor) -> BFloat16Tensor {
        forwardInBFloat16(inputShape: x.shape) { $0.run(x, weight.value, into: $1) }
    }

    public func forwardInBFloat16(_ x: BFloat16Tensor) -> BFloat16Tensor {
        forwardInBFloat16(inputShape: x.shape) { $0.run(x, weight.value, into: $1) }
    }

    private func forwardInBFloat16(
        inputShape shape: [Int], _ run: (BFloat16Convolution, BFloat16Tensor) -> Void
    ) -> BFloat16Tensor {
        timed {
            precondition(algorithm == .bfloat16 && bias == nil, "Conv3d.forwardInBFloat16 computes in bfloat16")
            let y = BFloat16Tensor(transient: outputShape(for: shape))
            (inputShape, outputShape, input) = (shape, y.shape, nil)
            run(bfloat16Convolution(for: shape), y)
            return y
        }
    }

    /// `body`, its seconds added to `secondsSpent` while `Conv3d.measuresTime` (the tuning).
    private func timed<Result>(_ body: () -> Result) -> Result {
        guard Conv3d.measuresTime else { return body() }
        let started = DispatchTime.now().uptimeNanoseconds
        defer { secondsSpent += Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9 }
        return body()
    }

    /// y = the convolution of x, without the bias.
    func convolve(_ x: Tensor, into y: Tensor) {
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
        timed {
            precondition(dy.shape == outputShape, "Conv3d.backward got \(dy.shape), output was \(outputShape)")
            if let bias, bias.requiresGradient { addColumnSums(of: dy, into: bias.gradient.data) }
            if algorithm == .bfloat16 {
                return bfloat16Backward(addingInputGradientTo: sum) { $0.backward(dy, dx: $1, gradient: $2) }
            }
            guard let x = input else { preconditionFailure("Conv3d.backward before forward") }
            checkAddable(to: sum)
            let accumulates = isRowShifted && sum != nil
            let dx = accumulates ? sum! : computesInputGradient ? Tensor(transient: x.shape) : Tensor(zeros: [0])
            if algorithm == .own {
                backwardOwn(x, dy, dx, accumulating: accumulates)
            } else {  // emulated bfloat16: forward kept x rounded
                let rounded = dy.roundedToBFloat16()
                withWeightRoundedToBFloat16 { backwardOwn(x, rounded, dx, accumulating: accumulates) }
            }
            guard let sum, !accumulates else { return dx }
            add(sum, dx, into: sum)
            return sum
        }
    }

    /// Backward from an output gradient in bfloat16 (a BatchNorm's backwardInBFloat16), for a
    /// convolution computing in bfloat16 without a bias: what `backward` computes from that
    /// gradient in float32, without its conversion.
    public func backward(_ dy: BFloat16Tensor, addingInputGradientTo sum: Tensor?) -> Tensor {
        timed {
            precondition(algorithm == .bfloat16 && bias == nil, "Conv3d.backward from bfloat16 computes in bfloat16")
            precondition(dy.shape == outputShape, "Conv3d.backward got \(dy.shape), output was \(outputShape)")
            return bfloat16Backward(addingInputGradientTo: sum) { $0.backward(dy, dx: $1, gradient: $2) }
        }
    }

    /// Backward by oneDNN in bfloat16: `pass` gets the convolution, dX (nil where the input
    /// gradient is not wanted) and dW to add to or, where still zero, write (nil where frozen);
    /// dX is added to `sum` where one is given.
    private func bfloat16Backward(
        addingInputGradientTo sum: Tensor?,
        _ pass: (BFloat16Convolution, Tensor?, (tensor: Tensor, isZero: Bool)?) -> Void
    ) -> Tensor {
        checkAddable(to: sum)
        let dx = computesInputGradient ? Tensor(transient: inputShape) : Tensor(zeros: [0])
        pass(
            bfloat16Convolution(for: inputShape), computesInputGradient ? dx : nil,
            weight.requiresGradient ? weight.gradientToWrite() : nil)
        guard let sum else { return dx }
        add(sum, dx, into: sum)
        return sum
    }

    /// Stops unless backward can add its input gradient to `sum` (or none is given).
    private func checkAddable(to sum: Tensor?) {
        precondition(
            sum == nil || (computesInputGradient && sum!.shape == inputShape),
            "Conv3d.backward cannot add its input gradient to \(sum?.shape ?? [])")
    }

    /// dW += the weight gradient, dX = (with `accumulating`, +=) the input gradient, by the own paths.
    private func backwardOwn(_ x: Tensor, _ dy: Tensor, _ dx: Tensor, accumulating: Bool) {
        let g = Geometry(input: x.shape, output: outputShape)
        if isRowShifted {
            backwardRowShifted(x, dy, dx, g, accumulating: accumulating)
            return
        }
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

    /// `body` with the weight's values rounded to bfloat16, then restored.
    private func withWeightRoundedToBFloat16<Result>(_ body: () -> Result) -> Result {
        let exact = weight.value.copy()
        weight.value.copy(from: weight.value.roundedToBFloat16())
        defer { weight.value.copy(from: exact) }
        return body()
    }

    func bfloat16Convolution(for inputShape: [Int]) -> BFloat16Convolution {
        if let made = bfloat16Convolutions[inputShape] { return made }
        let made = BFloat16Convolution(self, inputShape: inputShape)
        bfloat16Convolutions[inputShape] = made
        return made
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
    func inputGradientConvolution(rows: Int) -> Conv3d? {
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

}
