/// Eight floats at a time, for the element-wise loops the compiler does not vectorise by itself
/// (a select, such as a ReLU's mask, becomes a branch and keeps the loop scalar).
public typealias Float8 = SIMD8<Float>

extension UnsafeMutablePointer where Pointee: SIMDScalar {
    /// The eight elements from element `i` on.
    @inlinable @inline(__always) public func load8(_ i: Int) -> SIMD8<Pointee> {
        UnsafeRawPointer(self + i).loadUnaligned(as: SIMD8<Pointee>.self)
    }

    /// Writes eight elements from element `i` on.
    @inlinable @inline(__always) public func store8(_ value: SIMD8<Pointee>, _ i: Int) {
        UnsafeMutableRawPointer(self + i).storeBytes(of: value, as: SIMD8<Pointee>.self)
    }
}

/// A ReLU's backward, 8 at a time: the elements of `gradient` where `output` is above zero, zero
/// elsewhere (NaN outputs included).
@inlinable @inline(__always)
public func reluMasked(_ gradient: Float8, where output: Float8) -> Float8 {
    gradient.replacing(with: 0, where: .!(output .> 0))
}

/// The eight floats as doubles.
@inlinable @inline(__always)
public func widened(_ v: Float8) -> SIMD8<Double> {
    SIMD8<Double>(
        Double(v[0]), Double(v[1]), Double(v[2]), Double(v[3]), Double(v[4]), Double(v[5]), Double(v[6]), Double(v[7]))
}
