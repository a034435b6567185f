import CDNNL
import NLTensor

/// How a Conv3d, or a non-local block's products, compute: the project's own float32 paths on
/// OpenBLAS, or oneDNN's with bfloat16 inputs and float32 accumulation and results (mixed
/// precision: the weights, their gradient and everything else stay float32, but for what a
/// convolution and its BatchNorm hand each other, and a BatchNorm the next convolution, which is
/// bfloat16: ConvModule, ResidualBlock).
public enum ConvolutionAlgorithm: String, Sendable, CaseIterable {
    case own, bfloat16
    /// The own float32 paths on the input, the weight and the output gradient rounded to
    /// bfloat16: what `bfloat16` computes, up to the order of float32 sums, on any CPU (slowly).
    /// The reference the tests hold oneDNN's bfloat16 to.
    case emulatedBFloat16 = "emulated_bfloat16"
}

extension Tensor {
    /// A copy with every value rounded to the nearest bfloat16 (ties to even), kept as float32.
    func roundedToBFloat16() -> Tensor { BFloat16Tensor(rounding: self).widened() }
}

extension Conv3d {
    /// oneDNN's three convolutions of one input shape in bfloat16: forward (to a float32 output,
    /// or to a bfloat16 one for a BatchNorm), backward data and backward weights, with the
    /// conversions from and to the layer's float32 tensors (activations channels-last, the weight
    /// (kT, kH, kW, Cin, Cout)). The bfloat16 copies of the input and the weight made in forward
    /// serve backward too. The copies of the input and of the output gradient, activation-sized,
    /// come from the pool of transient buffers: the input's is kept for backward (not inside
    /// Inference.run), the output gradient's lives for one backward.
    final class BFloat16Convolution {
        private let forward: OneDNN.Primitive
        private let backwardData: OneDNN.Primitive
        private let backwardWeights: OneDNN.Primitive
        /// The layer's float32 tensors, pointed at each call.
        private let input, output, outputGradient, inputGradient, weightGradient: OneDNN.Memory
        /// bfloat16 (and the weight gradient's float32) in the layouts the primitives chose; the
        /// input's and the output gradient's over pooled buffers, pointed at each call.
        private let input16, weight16, weight16ForData, outputGradient16, weightGradientBlocked: OneDNN.Memory
        /// The buffer of the input's bfloat16 copy that the last forward made, for backward.
        private var keptInput16: Tensor?
        private let toInput16, toOutputGradient16, addWeightGradient, writeWeightGradient: OneDNN.Primitive
        private let toWeight16: WeightConversion
        private let toWeight16ForData: OneDNN.Primitive?
        /// The float32 weight's layout, from which each bfloat16 copy is made.
        private let weight32: dnnl_memory_desc_t
        /// Forward with a bfloat16 output (Conv3d.forwardInBFloat16), made on first use, with the
        /// weight in the layout it chose: forward's, or (where oneDNN wants another) a copy of its own.
        private var forwardOperationToBFloat16: dnnl_convolution_desc_t
        private typealias ToBFloat16 = (primitive: OneDNN.Primitive, weights: OneDNN.Memory, copy: WeightConversion?)
        private var madeForwardToBFloat16: ToBFloat16?
        private var forwardToBFloat16: ToBFloat16 {
            if let made = madeForwardToBFloat16 { return made }
            let primitive = OneDNN.Primitive(&forwardOperationToBFloat16, hint: forward)
            let layout = primitive.layout(dnnl_query_weights_md)
            let made: ToBFloat16 =
                OneDNN.same(layout, weight16.descriptor)
                ? (primitive, weight16, nil)
                : (primitive, OneDNN.Memory(layout, zeroed: true), WeightConversion(from: weight32, to: layout))
            madeForwardToBFloat16 = made
            return made
        }
        private let output16: OneDNN.Memory

        init(_ conv: Conv3d, inputShape: [Int]) {
            let outputShape = conv.outputShape(for: inputShape)
            // oneDNN's logical order is (N, C, D, H, W) and (O, I, D, H, W); the tags give ours.
            let (n, c, o) = (inputShape[0], conv.inputChannels, conv.outputChannels)
            let inputDims = [n, c, inputShape[1], inputShape[2], inputShape[3]]
            let outputDims = [n, o, outputShape[1], outputShape[2], outputShape[3]]
            let weightDims = [o, c, conv.kernelSize.t, conv.kernelSize.h, conv.kernelSize.w]
            let strides = [conv.stride.t, conv.stride.h, conv.stride.w].map(Int64.init)
            let padding = [conv.padding.t, conv.padding.h, conv.padding.w].map(Int64.init)
            let input32 = OneDNN.descriptor(inputDims, dnnl_f32, dnnl_ndhwc)
            let output32 = OneDNN.descriptor(outputDims, dnnl_f32, dnnl_ndhwc)
            let weight32 = OneDNN.descriptor(weightDims, dnnl_f32, dnnl_dhwio)
            var input16 = OneDNN.descriptor(inputDims, dnnl_bf16, dnnl_ndhwc)
            var output16 = OneDNN.descriptor(outputDims, dnnl_bf16, dnnl_ndhwc)
            var weightAny = OneDNN.descriptor(weightDims, dnnl_bf16, dnnl_format_tag_any)
            var outputF32 = output32, inputF32 = input32
            var gradientAny = OneDNN.descriptor(weightDims, dnnl_f32, dnnl_format_tag_any)

            var operation = dnnl_convolution_desc_t()
            OneDNN.check(
                dnnl_convolution_forward_desc_init(
                    &operation, dnnl_forward_training, dnnl_convolution_direct, &input16, &weightAny, nil, &outputF32,
                    strides, padding, padding), "describing a forward convolution")
            forward = OneDNN.Primitive(&operation)
            OneDNN.check(
                dnnl_convolution_backward_data_desc_init(
                    &operation, dnnl_convolution_direct, &inputF32, &weightAny, &output16, strides, padding, padding),
                "describing a backward-data convolution")
            backwardData = OneDNN.Primitive(&operation, hint: forward)
            OneDNN.check(
                dnnl_convolution_backward_weights_desc_init(
                    &operation, dnnl_convolution_direct, &input16, &gradientAny, nil, &output16, strides, padding,
                    padding), "describing a backward-weights convolution")
            backwardWeights = OneDNN.Primitive(&operation, hint: forward)

            input = OneDNN.Memory(input32, allocated: false)
            output = OneDNN.Memory(output32, allocated: false)
            outputGradient = OneDNN.Memory(output32, allocated: false)
            inputGradient = OneDNN.Memory(input32, allocated: false)
            weightGradient = OneDNN.Memory(weight32, allocated: false)
            self.input16 = OneDNN.Memory(forward.layout(dnnl_query_src_md), allocated: false)
            weight16 = OneDNN.Memory(forward.layout(dnnl_query_weights_md), zeroed: true)
            outputGradient16 = OneDNN.Memory(backwardData.layout(dnnl_query_diff_dst_md), allocated: false)
            weightGradientBlocked = OneDNN.Memory(backwardWeights.layout(dnnl_query_diff_weights_md))
            toInput16 = OneDNN.reorder(input32, self.input16.descriptor)
            self.weight32 = weight32
            toWeight16 = WeightConversion(from: weight32, to: weight16.descriptor)
            toOutputGradient16 = OneDNN.reorder(output32, outputGradient16.descriptor)
            addWeightGradient = OneDNN.reorder(weightGradientBlocked.descriptor, weight32, adding: true)
            writeWeightGradient = OneDNN.reorder(weightGradientBlocked.descriptor, weight32)
            let forData = backwardData.layout(dnnl_query_weights_md)
            if OneDNN.same(forData, weight16.descriptor) {
                (weight16ForData, toWeight16ForData) = (weight16, nil)
            } else {
                weight16ForData = OneDNN.Memory(forData)
                toWeight16ForData = OneDNN.reorder(weight16.descriptor, forData)
            }
            forwardOperationToBFloat16 = dnnl_convolution_desc_t()
            OneDNN.check(
                dnnl_convolution_forward_desc_init(
                    &forwardOperationToBFloat16, dnnl_forward_training, dnnl_convolution_direct, &input16,
                    &weightAny, nil, &output16, strides, padding, padding),
                "describing a forward convolution to bfloat16")
            self.output16 = OneDNN.Memory(output16, allocated: false)
            precondition(
                OneDNN.same(backwardWeights.layout(dnnl_query_src_md), self.input16.descriptor)
                    && OneDNN.same(backwardWeights.layout(dnnl_query_diff_dst_md), outputGradient16.descriptor),
                "oneDNN's backward-weights convolution wants other layouts than forward's and backward-data's")
        }

        /// Which implementations oneDNN chose, forward / backward data / backward weights; the
        /// forward to a bfloat16 output's too, once made, where it is another.
        var implementations: [String] {
            var forwardKernel = forward.implementation
            if let toBFloat16 = madeForwardToBFloat16?.primitive.implementation, toBFloat16 != forwardKernel {
                forwardKernel += ", to bfloat16 \(toBFloat16)"
            }
            return [forwardKernel, backwardData.implementation, backwardWeights.implementation]
        }

        /// y = the convolution of x (no bias), from bfloat16 copies of x and the weight.
        func run(_ x: Tensor, _ weightValue: Tensor, into y: Tensor) {
            let x16 = convert(x, weightValue)
            output.point(to: y.data)
            forward.run([(DNNL_ARG_SRC, input16), (DNNL_ARG_WEIGHTS, weight16), (DNNL_ARG_DST, output)])
            keptInput16 = Inference.kept(x16)  // held until here: the pool must not hand it out before
        }

        /// The same, y written in bfloat16 (Conv3d.forwardInBFloat16).
        func run(_ x: Tensor, _ weightValue: Tensor, into y: BFloat16Tensor) {
            let x16 = convert(x, weightValue)
            runToBFloat16(weightValue, into: y)
            keptInput16 = Inference.kept(x16)
        }

        /// The same from x already in bfloat16 (a BatchNorm's forwardToBFloat16), which it reads
        /// and keeps for backward as it is: no copy.
        func run(_ x: BFloat16Tensor, _ weightValue: Tensor, into y: BFloat16Tensor) {
            input16.point(to: x.storage.data)
            convertWeight(weightValue)
            runToBFloat16(weightValue, into: y)
            keptInput16 = Inference.kept(x.storage)
        }

        /// Forward to a bfloat16 y from the copies `input16` and the weight's point at (and a
        /// copy of `weightValue` of its own where it wants another layout).
        private func runToBFloat16(_ weightValue: Tensor, into y: BFloat16Tensor) {
            let (primitive, weights, copy) = forwardToBFloat16
            copy?.run(weightValue, into: weights)
            output16.point(to: y.storage.data)
            primitive.run([(DNNL_ARG_SRC, input16), (DNNL_ARG_WEIGHTS, weights), (DNNL_ARG_DST, output16)])
        }

        /// The bfloat16 copies of x, in a pooled buffer `input16` points at (returned: the caller
        /// holds it while a primitive reads it, and keeps it for backward), and of the weight, in
        /// the layouts forward and backward data read.
        private func convert(_ x: Tensor, _ weightValue: Tensor) -> Tensor {
            input.point(to: x.data)
            let x16 = pooledBuffer(for: input16)
            toInput16.run([(DNNL_ARG_FROM, input), (DNNL_ARG_TO, input16)])
            convertWeight(weightValue)
            return x16
        }

        /// The weight's bfloat16 copies, in the layouts forward and backward data read.
        private func convertWeight(_ weightValue: Tensor) {
            toWeight16.run(weightValue, into: weight16)
            toWeight16ForData?.run([(DNNL_ARG_FROM, weight16), (DNNL_ARG_TO, weight16ForData)])
        }

        /// A buffer of the pool for `memory`, which is pointed at it; the memory stays valid while
        /// the buffer is held.
        private func pooledBuffer(for memory: OneDNN.Memory) -> Tensor {
            let buffer = Tensor(transient: [(memory.bytes + 3) / 4])
            memory.point(to: buffer.data)
            return buffer
        }

        /// dX = the input gradient (when `dx` is given), dW += the weight gradient (when
        /// `gradient` is given; dW = it where `gradient` is still zero), from a bfloat16 copy of
        /// dY and forward's copies.
        func backward(_ dy: Tensor, dx: Tensor?, gradient: (tensor: Tensor, isZero: Bool)?) {
            outputGradient.point(to: dy.data)
            let dy16 = pooledBuffer(for: outputGradient16)
            defer { withExtendedLifetime(dy16) {} }
            toOutputGradient16.run([(DNNL_ARG_FROM, outputGradient), (DNNL_ARG_TO, outputGradient16)])
            backwardFromBFloat16(dx: dx, gradient: gradient)
        }

        /// The same from dY already in bfloat16 (a BatchNorm's backwardInBFloat16).
        func backward(_ dy: BFloat16Tensor, dx: Tensor?, gradient: (tensor: Tensor, isZero: Bool)?) {
            outputGradient16.point(to: dy.storage.data)
            backwardFromBFloat16(dx: dx, gradient: gradient)
        }

        /// Backward from the bfloat16 output gradient `outputGradient16` points at.
        private func backwardFromBFloat16(dx: Tensor?, gradient: (tensor: Tensor, isZero: Bool)?) {
            if let dx {
                inputGradient.point(to: dx.data)
                backwardData.run([
                    (DNNL_ARG_DIFF_DST, outputGradient16), (DNNL_ARG_WEIGHTS, weight16ForData),
                    (DNNL_ARG_DIFF_SRC, inputGradient),
                ])
            }
            if let gradient {
                guard let x16 = keptInput16 else { preconditionFailure("Conv3d.backward after an inference forward") }
                input16.point(to: x16.data)
                weightGradient.point(to: gradient.tensor.data)
                backwardWeights.run([
                    (DNNL_ARG_SRC, input16), (DNNL_ARG_DIFF_DST, outputGradient16),
                    (DNNL_ARG_DIFF_WEIGHTS, weightGradientBlocked),
                ])
                (gradient.isZero ? writeWeightGradient : addWeightGradient).run([
                    (DNNL_ARG_FROM, weightGradientBlocked), (DNNL_ARG_TO, weightGradient),
                ])
            }
        }
    }
}

/// The arithmetic of a network's convolutions ([train] precision): float32 throughout, or mixed
/// precision, whose convolutions take bfloat16 inputs and accumulate in float32.
public enum Precision: String, Sendable, CaseIterable {
    case fp32, bf16

    /// Why this precision cannot run here, or nil: bfloat16 needs AVX512_BF16 or AMX, without
    /// which oneDNN would emulate it, slower than float32.
    public var unavailable: String? {
        guard self == .bf16, !OneDNN.runsBFloat16 else { return nil }
        return "this CPU (\(CPUFeatures.current.model)) has neither AVX512_BF16 nor AMX, as oneDNN "
            + "\(OneDNN.version) sees it: bfloat16 would be emulated, slower than fp32; use fp32"
    }

    /// oneDNN's version ("2.6.3"), which runs the bfloat16 convolutions.
    public static var oneDNNVersion: String { OneDNN.version }
}

extension Layer {
    /// Makes every convolution and non-local block's products of the layer and its descendants
    /// compute in `precision`, and the process's parallel loops run where that is fastest: on
    /// OpenMP's team, which oneDNN shares, in bf16; on the own pool in fp32 (Parallel).
    public func use(_ precision: Precision) {
        Parallel.sharesOpenMPThreads = precision == .bf16
        let algorithm: ConvolutionAlgorithm = precision == .bf16 ? .bfloat16 : .own
        for layer in [self as Layer] + descendants {
            (layer as? Conv3d)?.algorithm = algorithm
            (layer as? NonLocalBlock)?.products = algorithm
        }
    }
}

extension Conv3d {
    /// oneDNN's kernels for the input the layer last took, forward / backward data / backward
    /// weights ("brgconv:avx512_core_bf16"; AMX's say avx512_core_amx), the forward to a bfloat16
    /// output's added where it is another kernel; nil before a bfloat16 pass.
    public var bfloat16Kernels: String? {
        bfloat16Convolutions[inputShape]?.implementations.joined(separator: " / ")
    }

    /// oneDNN's bfloat16 convolution against the emulation, on the input the layer last kept (a
    /// random one of its shape where it kept none: in bfloat16, or inside Inference.run) and a
    /// random output gradient: the largest relative difference of the output, the input gradient
    /// and the weight gradient (float32's orders of summation give 1e-6), or (not `training`) of
    /// the output alone, all that evaluation runs. Without a bias, also the forward that writes
    /// bfloat16 (another oneDNN kernel, which a ConvModule runs before its BatchNorm), by how far
    /// its output lies beyond a rounding of the float32 one (BFloat16Tensor.roundingError). What
    /// the tuning holds oneDNN to on this machine, shape by shape, before it chooses it: a newer
    /// library is not a right library. Leaves the layer's algorithm and gradients as they were.
    public func bfloat16Discrepancy(training: Bool, using generator: inout SeededGenerator) -> Float {
        guard !inputShape.isEmpty else { return 0 }
        let x: Tensor
        if let input {
            x = input
        } else {
            x = Tensor(zeros: inputShape)
            x.fillNormal(std: 1, using: &generator)
        }
        let (algorithm, gradient) = (self.algorithm, weight.gradient.copy())
        defer {
            self.algorithm = algorithm
            weight.gradient.copy(from: gradient)
        }
        let dy = training ? Tensor(zeros: outputShape(for: x.shape)) : nil
        dy?.fillNormal(std: 1, using: &generator)
        func pass(_ candidate: ConvolutionAlgorithm) -> [Tensor] {
            self.algorithm = candidate
            weight.gradient.zero()
            let y = forward(x, training: true)
            guard let dy else { return [y] }
            let dx = backward(dy)
            return [y, dx, weight.gradient.copy()]
        }
        let (oneDNN, emulated) = (pass(.bfloat16), pass(.emulatedBFloat16))
        let discrepancy = zip(oneDNN, emulated).map(relativeError).max()!
        guard bias == nil else { return discrepancy }
        self.algorithm = .bfloat16
        return max(discrepancy, forwardInBFloat16(x).roundingError(from: oneDNN[0]))
    }
}
