import Foundation

/// A 64-byte aligned block of Float32 that one or more `Tensor` views share.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    /// Transient storage goes back to the pool when its last view is dropped.
    private let transient: Bool

    /// Zero-filled, so that fresh buffers never carry stale values.
    public init(count: Int) {
        pointer = Self.allocate(count)
        memset(pointer, 0, max(count, 1) * MemoryLayout<Float>.stride)
        self.count = count
        transient = false
    }

    /// From the pool of transient buffers, contents undefined.
    init(transientCount count: Int) {
        pointer = TransientPool.shared.take(count) ?? Self.allocate(count)
        self.count = count
        transient = true
    }

    /// Buffers of 4 huge pages or more (activations, their gradients, the large weights) are
    /// whole huge pages, 2 MiB-aligned, and advised to be backed by them (transparent huge pages
    /// in "madvise" mode, Debian's default): the passes that stream them (BatchNorm, SGD,
    /// OpenBLAS's packing) miss the TLB less. The step at 2x8x224 on the AMD EPYC: 1.24 s against
    /// 1.28 (medians of 6 interleaved runs), peak RSS 991 MiB against 955.
    static let hugePage = 2 << 20

    static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        precondition(count >= 0, "negative element count")
        var raw: UnsafeMutableRawPointer?
        var bytes = max(count, 1) * MemoryLayout<Float>.stride
        let huge = bytes >= 4 * hugePage
        if huge { bytes = (bytes + hugePage - 1) / hugePage * hugePage }
        guard posix_memalign(&raw, huge ? hugePage : 64, bytes) == 0, let raw else {
            // No way on from here, but a clear one out (70, where a trap said "Fatal error" and died
            // of SIGILL): checkpoints are written whole or not at all, so the last one is intact.
            Files.emit(
                "out of memory: cannot allocate \(bytes) bytes (\(String(format: "%.1f", Double(bytes) / 1_073_741_824)) GiB) with "
                    + "\(String(format: "%.1f", ProcessMemory.residentMiB / 1024)) GiB in use; lower train.batch_size or the clip size, "
                    + "or raise the memory limit (ulimit -v, the container's). The last checkpoint is whole\n",
                to: .standardError)
            exit(70)
        }
        if huge { madvise(raw, bytes, MADV_HUGEPAGE) }
        return raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit {
        if transient { TransientPool.shared.give(pointer, count: count) } else { free(pointer) }
    }
}

/// Buffers that live for part of a step, such as the gradients backward passes from layer to
/// layer: each returns here when its tensor is dropped and serves the next request of its size,
/// so memory holds only what is alive at once, and a step reuses the pages of the last one
/// instead of faulting in new ones.
final class TransientPool: @unchecked Sendable {
    static let shared = TransientPool()
    private var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private let lock = NSLock()

    func take(_ count: Int) -> UnsafeMutablePointer<Float>? {
        lock.withLock { free[count]?.popLast() }
    }

    func give(_ pointer: UnsafeMutablePointer<Float>, count: Int) {
        lock.withLock { free[count, default: []].append(pointer) }
    }

    /// Frees every pooled buffer: after work whose sizes will not come again (the self-check).
    func drain() {
        lock.withLock {
            for pointer in free.values.joined() { Foundation.free(pointer) }
            free = [:]
        }
    }
}

/// A Float32 tensor with reference semantics, like `torch.Tensor`: copying a `Tensor` value makes
/// another view of the same elements, so writes through one are seen by the other. Activations are
/// channels-last (N, T, H, W, C); `shape` lists dimensions outermost first, elements are contiguous.
public struct Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let count: Int
    public let storage: TensorStorage
    /// Where this view starts in `storage`.
    public let offset: Int

    /// A zero-filled tensor.
    public init(zeros shape: [Int]) {
        self.shape = shape
        count = shape.reduce(1, *)
        storage = TensorStorage(count: count)
        offset = 0
    }

    /// A tensor for the rest of a computation (a gradient passed between layers), from the pool
    /// of transient buffers: its elements are undefined until written.
    public init(transient shape: [Int]) {
        self.shape = shape
        count = shape.reduce(1, *)
        storage = TensorStorage(transientCount: count)
        offset = 0
    }

    /// Frees the pool's idle transient buffers, after work whose sizes will not come again, and
    /// gives the freed pages back to the system (glibc keeps them otherwise).
    public static func releasePooledBuffers() {
        TransientPool.shared.drain()
        _ = malloc_trim(0)
    }

    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
        self.init(zeros: shape)
        values.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    public init(shape: [Int], repeating value: Float) {
        self.init(zeros: shape)
        fill(value)
    }

    private init(shape: [Int], storage: TensorStorage, offset: Int) {
        self.shape = shape
        count = shape.reduce(1, *)
        self.storage = storage
        self.offset = offset
    }

    public var rank: Int { shape.count }
    /// The first element. Valid while this tensor (or another view of its storage) is alive.
    public var data: UnsafeMutablePointer<Float> { storage.pointer + offset }
    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: data, count: count) }

    /// Element `i` of the flattened tensor. Unlike `data[i]`, safe on a temporary: a raw pointer
    /// taken from a tensor that is not kept in a variable can outlive its storage.
    public subscript(i: Int) -> Float {
        get { withExtendedLifetime(storage) { data[i] } }
        nonmutating set { withExtendedLifetime(storage) { data[i] = newValue } }
    }
    public var array: [Float] { Array(buffer) }
    /// The size of the last dimension: the channels of an activation.
    public var channels: Int { shape.last ?? 1 }
    /// Elements per index of the last dimension: the rows of an activation seen as a (rows, C) matrix.
    public var rows: Int { shape.isEmpty ? 1 : count / max(channels, 1) }

    /// Another view of the same elements with another shape of the same size.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: newShape, storage: storage, offset: offset)
    }

    /// Another view of the same elements: indices `range` of the first axis.
    public func slice(_ range: Range<Int>) -> Tensor {
        precondition(rank > 0 && range.lowerBound >= 0 && range.upperBound <= shape[0], "slice \(range) of \(shape)")
        let per = count / max(shape[0], 1)
        return Tensor(
            shape: [range.count] + shape.dropFirst(), storage: storage, offset: offset + range.lowerBound * per)
    }

    /// A new tensor holding the same elements.
    public func copy() -> Tensor {
        let result = Tensor(zeros: shape)
        result.copy(from: self)
        return result
    }

    /// Copies `source`'s elements, which must be as many, into this tensor, over the threads
    /// (one thread alone leaves the other idle: an activation of layer1 is 25 MB).
    public func copy(from source: Tensor) {
        precondition(source.count == count, "copying \(source.shape) into \(shape)")
        let (from, to) = (source.data, data)
        forEachElementRange(count) { range in
            (to + range.lowerBound).update(from: from + range.lowerBound, count: range.count)
        }
    }

    /// Sets every element to `value`, over the threads as `copy(from:)`: the step zeroes 140 MB of
    /// gradients (R50) before its forward.
    public func fill(_ value: Float) {
        let to = data
        forEachElementRange(count) { range in (to + range.lowerBound).update(repeating: value, count: range.count) }
    }

    public func zero() { fill(0) }

    /// A new tensor whose axis i is this tensor's axis `axes[i]`, as `torch.permute`.
    public func permuted(_ axes: [Int]) -> Tensor {
        precondition(axes.sorted() == Array(0..<rank), "\(axes) is not a permutation of \(rank) axes")
        let outShape = axes.map { shape[$0] }
        let result = Tensor(zeros: outShape)
        var inStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * shape[i + 1] }
        let strides = axes.map { inStrides[$0] }
        var index = [Int](repeating: 0, count: rank)
        let src = data, dst = result.data
        for o in 0..<count {
            var offset = 0
            for i in 0..<rank { offset += index[i] * strides[i] }
            dst[o] = src[offset]
            var axis = rank - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < outShape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return result
    }

    /// PyTorch's (N, C, T, H, W) to channels-last (N, T, H, W, C).
    public func channelsLast() -> Tensor { permuted([0, 2, 3, 4, 1]) }
    /// Channels-last (N, T, H, W, C) to PyTorch's (N, C, T, H, W).
    public func channelsFirst() -> Tensor { permuted([0, 4, 1, 2, 3]) }
}

/// Returns `slot` if it already holds a tensor of `shape`, otherwise a new zero tensor stored in
/// `slot`: how layers keep their output and gradient buffers from one step to the next.
public func reuse(_ slot: inout Tensor?, shape: [Int]) -> Tensor {
    if let existing = slot, existing.shape == shape { return existing }
    let fresh = Tensor(zeros: shape)
    slot = fresh
    return fresh
}

/// glibc's malloc_trim (malloc.h, which Glibc's module map leaves out): returns free heap pages
/// to the system.
@_silgen_name("malloc_trim") private func malloc_trim(_ pad: Int) -> Int32
