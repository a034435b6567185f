import Foundation
import NLTensor
import Synchronization

/// One step of a network. `forward` then `backward`, in the manner of llm.c:
///
/// - `forward` returns its output in a fresh transient tensor (`Tensor(transient:)`, from the
///   pool of buffers), which lives as long as someone holds it; the layer keeps references to
///   what `backward` needs (its input, or its output), nothing more, and nothing inside
///   `Inference.run`.
/// - `backward` takes dLoss/dOutput for the last forward, *adds* the parameter gradients into
///   each `Parameter.gradient` (zeroing is a separate step, `zeroGradients`), and returns
///   dLoss/dInput in a transient tensor (`Tensor(transient:)`): the caller's, whose memory goes
///   back to the pool when the caller drops it, so a backward pass holds only the gradients in
///   flight, not one for every layer.
public protocol Layer: AnyObject {
    func forward(_ input: Tensor, training: Bool) -> Tensor
    func backward(_ gradOutput: Tensor) -> Tensor
    /// This layer's own parameters and buffers, under their PyTorch state_dict names.
    var ownState: [(name: String, entry: StateEntry)] { get }
    /// The layers inside this one, under the names that prefix their state ("conv", "bn", "0"),
    /// as PyTorch's named_children.
    var children: [(name: String, layer: Layer)] { get }
}

/// Forward passes that no backward pass follows (evaluation, prediction, BatchNorm's statistics
/// recomputed), as PyTorch's torch.no_grad(): inside `Inference.run`, layers keep none of the
/// tensors only a backward pass reads (inputs, outputs, a non-local block's projections), so each
/// activation goes back to the pool of buffers once the next layer has read it. nleval of
/// nl_i3d_r50 on batches of 8 x 32 x 224 x 224: 3.6 GB instead of 7.2 (AMD EPYC Zen 4). A
/// backward after such a forward stops the process, as one before any forward. Per thread, as
/// PyTorch's: a model training on another thread meanwhile keeps what its backward needs.
public enum Inference {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "cannot create a thread-specific key")
        return key
    }()

    /// `body`, its forward passes on this thread keeping nothing for a backward one.
    public static func run<Result>(_ body: () throws -> Result) rethrows -> Result {
        let outer = pthread_getspecific(key)
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(key, outer) }
        return try body()
    }

    /// What a layer keeps of `tensor` for its backward: the tensor, or nil inside `run`.
    static func kept(_ tensor: Tensor) -> Tensor? { pthread_getspecific(key) == nil ? tensor : nil }
}

/// What a state_dict entry holds.
public enum StateEntry {
    case parameter(Parameter)
    /// A float buffer that is not learned, such as a running mean.
    case buffer(Tensor)
    /// An int64 scalar, such as BatchNorm's num_batches_tracked.
    case counter(Counter)
}

public final class Counter {
    public var value: Int64 = 0
    public init() {}
}

/// A learned tensor, its gradient, and how it is laid out in checkpoints.
public final class Parameter {
    /// Whether weight decay applies to this parameter by kind: some recipes exempt norms and biases.
    public enum Kind: Sendable { case weight, bias, normalization }

    public let value: Tensor
    public let kind: Kind
    /// The shape in PyTorch's layout, as checkpoints hold it.
    public let checkpointShape: [Int]
    /// Axes taking the checkpoint layout to `value`'s (`value = checkpoint.permuted(axes)`), or nil
    /// when the two layouts are the same.
    public let fromCheckpointAxes: [Int]?
    /// False for frozen parameters: backward then leaves `gradient` alone.
    public var requiresGradient = true

    /// The gradient, which backward adds into; zeros after `zeroGradient`, written out on first
    /// use (by any thread: a layer may first touch it inside a parallel loop).
    public var gradient: Tensor {
        if gradientIsZero.load(ordering: .acquiring) {
            zeroing.withLock { _ in
                if gradientIsZero.load(ordering: .relaxed) {
                    storedGradient.zero()
                    gradientIsZero.store(false, ordering: .releasing)
                }
            }
        }
        return storedGradient
    }
    private let storedGradient: Tensor
    private let gradientIsZero = Atomic<Bool>(false)
    private let zeroing = Mutex(())

    /// Makes the gradient zero without a pass over it, as PyTorch's zero_grad(set_to_none=True):
    /// a backward that writes all of it at once then writes instead of adding
    /// (`gradientToWrite`), and anything else that reads it first gets zeros.
    public func zeroGradient() {
        gradientIsZero.store(true, ordering: .releasing)
    }

    /// The gradient, for a backward that adds its whole contribution in one pass, and whether it
    /// is still zero, in which case the pass writes it instead (and must).
    public func gradientToWrite() -> (tensor: Tensor, isZero: Bool) {
        let isZero = zeroing.withLock { _ in gradientIsZero.exchange(false, ordering: .acquiringAndReleasing) }
        return (storedGradient, isZero)
    }

    public init(shape: [Int], kind: Kind, checkpointShape: [Int]? = nil, fromCheckpointAxes: [Int]? = nil) {
        value = Tensor(zeros: shape)
        storedGradient = Tensor(zeros: shape)
        self.kind = kind
        self.checkpointShape = checkpointShape ?? shape
        self.fromCheckpointAxes = fromCheckpointAxes
    }

    /// The value, or a gradient, in PyTorch's layout.
    public func inCheckpointLayout(_ tensor: Tensor) -> Tensor {
        guard let axes = fromCheckpointAxes else { return tensor.reshaped(checkpointShape) }
        var inverse = [Int](repeating: 0, count: axes.count)
        for (i, a) in axes.enumerated() { inverse[a] = i }
        return tensor.permuted(inverse).reshaped(checkpointShape)
    }

    /// Sets the value from a tensor in PyTorch's layout.
    public func load(checkpoint tensor: Tensor) {
        precondition(tensor.shape == checkpointShape, "loading \(tensor.shape) into \(checkpointShape)")
        value.copy(from: fromCheckpointAxes.map { tensor.permuted($0) } ?? tensor)
    }
}

/// Three sizes along (time, height, width): kernels, strides, paddings.
public struct Size3: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var t, h, w: Int
    public init(_ t: Int, _ h: Int, _ w: Int) { (self.t, self.h, self.w) = (t, h, w) }
    public init(_ all: Int) { (t, h, w) = (all, all, all) }
    public var volume: Int { t * h * w }
    public var description: String { "\(t)x\(h)x\(w)" }
}

extension Layer {
    public var ownState: [(name: String, entry: StateEntry)] { [] }
    public var children: [(name: String, layer: Layer)] { [] }

    /// The state_dict: own entries, then each child's under "child.".
    public var state: [(name: String, entry: StateEntry)] {
        ownState
            + children.flatMap { child in child.layer.state.map { (name: "\(child.name).\($0.name)", entry: $0.entry) }
            }
    }

    /// Every layer inside this one, depth first.
    public var descendants: [Layer] { namedDescendants.map(\.layer) }

    /// Every layer inside this one with its dotted path ("layer1.0.conv1"), depth first.
    public var namedDescendants: [(name: String, layer: Layer)] {
        children.flatMap { child in
            [child] + child.layer.namedDescendants.map { (name: "\(child.name).\($0.name)", layer: $0.layer) }
        }
    }

    /// The learned parameters, with their names.
    public var parameters: [(name: String, parameter: Parameter)] {
        state.compactMap { if case .parameter(let p) = $0.entry { (name: $0.name, parameter: p) } else { nil } }
    }

    public func zeroGradients() {
        for (_, p) in parameters { p.zeroGradient() }
    }
}

/// The output length of a window of `kernel` sliding by `stride` over `length` padded by `padding`
/// on both sides (PyTorch's floor rule). The one output-size function of every conv and pool.
public func slidingOutputLength(_ length: Int, kernel: Int, stride: Int, padding: Int) -> Int {
    (length + 2 * padding - kernel) / stride + 1
}
