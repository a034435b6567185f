import Foundation
import NLLayers
import NLModels
import NLTensor
import NLTestSupport
import Testing

/// Forward passes inside `Inference.run`, as evaluation runs them: the same logits to the bit,
/// with nothing kept for a backward pass, and nothing changed for the training after them.
struct InferenceTests {
    /// The tiny NL I3D (non-local blocks), and the same with GCNet's context blocks in every
    /// block of res3 to res5 (LayerNorm, both fusions) and every non-local function but the
    /// embedded Gaussian. Inside `Inference.run` the clip is held by nobody once the forward is
    /// done (outside, the first convolution keeps it for backward); the logits are those of a
    /// forward outside; a training step after it computes the gradients of a model that never
    /// ran one. In fp32, and in bf16 where this CPU has it (oneDNN's bfloat16 copies of the
    /// activations, and the convolutions' outputs the BatchNorms keep, then come from the pool of
    /// buffers too).
    @Test(arguments: ["non-local", "context"], Precision.allCases.filter { $0.unavailable == nil })
    func keepsNothingAndChangesNothing(_ blocks: String, _ precision: Precision) {
        var spec = ModelSpec.named("nl_i3d_r50_tiny")!
        spec.numClasses = 5
        if blocks == "context" {
            spec.context = [[0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [1, 1, 1]]
            spec.contextFusions = ["channel_add", "channel_mul"]
            spec.nonLocalMode = .dotProduct
        }
        let (evaluated, fresh) = (Recognizer(spec: spec), Recognizer(spec: spec))
        for model in [evaluated, fresh] {
            var same = SeededGenerator(seed: 61)
            randomizeParameters(model, std: 0.1, using: &same)
            model.use(precision)
        }
        var generator = SeededGenerator(seed: 60)
        let shape = [2, 8, 32, 32, 3]
        let clip = randomTensor(shape, using: &generator)

        func heldAfterForward(inference: Bool) -> (held: Bool, logits: Tensor) {
            var copy: Tensor? = clip.copy()
            weak let storage = copy!.storage
            let forward = { evaluated.forward(copy!, training: false) }
            let logits = inference ? Inference.run(forward) : forward()
            copy = nil
            return (storage != nil, logits.copy())
        }
        let (heldOutside, expected) = heldAfterForward(inference: false)
        let (heldInside, logits) = heldAfterForward(inference: true)
        // In bf16 the convolutions keep bfloat16 copies of their inputs instead, from the pool.
        #expect(heldOutside == (precision == .fp32), "outside Inference.run the first convolution keeps its input")
        #expect(!heldInside, "inside Inference.run a layer kept the clip")
        #expect(Array(logits.buffer) == Array(expected.buffer), "the logits differ: \(relativeError(logits, expected))")

        let dLogits = randomTensor([2, spec.numClasses], using: &generator)
        for model in [evaluated, fresh] {
            model.zeroGradients()
            _ = model.forward(clip, training: true)
            _ = model.backward(dLogits)
        }
        for ((name, a), (_, b)) in zip(evaluated.parameters, fresh.parameters) {
            #expect(Array(a.gradient.buffer) == Array(b.gradient.buffer), "\(name)'s gradient differs")
        }
    }

    /// Inference is per thread: a model training on another thread while one thread evaluates
    /// inside `Inference.run` keeps what its backward needs (as Swift Testing runs tests, and as
    /// PyTorch's no_grad holds per thread).
    @Test func isPerThread() {
        let spec = ModelSpec.named("nl_i3d_r50_tiny")!
        var generator = SeededGenerator(seed: 62)
        let clip = randomTensor([2, 8, 32, 32, 3], using: &generator)
        let dLogits = randomTensor([2, spec.numClasses], using: &generator)
        nonisolated(unsafe) let training = Recognizer(spec: spec)  // the other thread's, while this one waits
        let evaluating = Recognizer(spec: spec)
        let finished = DispatchSemaphore(value: 0)
        Inference.run {
            _ = evaluating.forward(clip, training: false)
            let thread = Thread {
                _ = training.forward(clip, training: true)
                _ = training.backward(dLogits)  // stops the process if its layers kept nothing
                finished.signal()
            }
            thread.start()
            finished.wait()
        }
        #expect(training.parameters.contains { p in p.parameter.gradient.buffer.contains { $0 != 0 } })
    }
}
