/// Eight floats at a time, for the element-wise loops the compiler does not vectorise by itself
/// (a select, such as a ReLU's mask, becomes a branch and keeps the loop scalar).
public typealias Float8 = SIMD8<Float>

extension UnsafeMutablePointer where Pointee == Float {
    /// The eight floats from element `i` on.
    @inline(__always) public func load8(_ i: Int) -> Float8 {
        UnsafeRawPointer(self + i).loadUnaligned(as: Float8.self)
    }

    /// Writes eight floats from element `i` on.
    @inline(__always) public func store8(_ value: Float8, _ i: Int) {
        UnsafeMutableRawPointer(self + i).storeBytes(of: value, as: Float8.self)
    }
}

/// A ReLU's backward, 8 at a time: the elements of `gradient` where `output` is above zero, zero
/// elsewhere (NaN outputs included).
@inline(__always)
public func reluMasked(_ gradient: Float8, where output: Float8) -> Float8 {
    gradient.replacing(with: 0, where: .!(output .> 0))
}
