/// Activations in bfloat16 (each the upper 16 bits of a float32, rounded to nearest even), in a
/// Tensor's channels-last order: what a BatchNorm and its convolution hand each other in mixed
/// precision, and a BatchNorm the next convolution, where the convolution reads and writes
/// bfloat16 anyway, so that neither side streams float32 only for the other to convert it
/// (ConvModule, ResidualBlock).
public struct BFloat16Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let count: Int
    /// A pooled float32 buffer of half as many elements (rounded up), holding the bits.
    public let storage: Tensor

    /// From the pool of transient buffers, contents undefined.
    public init(transient shape: [Int]) {
        self.shape = shape
        count = shape.reduce(1, *)
        storage = Tensor(transient: [(count + 1) / 2])
    }

    /// `x` rounded to bfloat16, in a pooled buffer.
    public init(rounding x: Tensor) {
        self.init(transient: x.shape)
        roundToBFloat16(x.data, count: count, into: bits)
    }

    public var bits: UnsafeMutablePointer<UInt16> {
        UnsafeMutableRawPointer(storage.data).assumingMemoryBound(to: UInt16.self)
    }

    public var elements: BFloat16Elements { BFloat16Elements(bits) }

    /// The values, widened to float32 (the emulation of bfloat16, tests).
    public func widened() -> Tensor {
        Tensor(shape: shape, values: (0..<count).map(elements.value))
    }

    /// How far these values, meant as `reference` rounded to bfloat16, lie beyond such a rounding:
    /// the largest distance of an element from its reference past half a bfloat16 step (of the
    /// larger of the two: a rounding may cross a power of two), relative to the reference's
    /// largest magnitude as `relativeError` is. 0 for any rounding of values within half a step;
    /// where the reference was summed in another order, near the same 1e-6 float32 gives.
    public func roundingError(from reference: Tensor) -> Float {
        precondition(count == reference.count, "comparing \(shape) with \(reference.shape)")
        var excess: Float = 0, scale: Float = 0
        for i in 0..<count {
            let (value, target) = (elements.value(at: i), reference.data[i])
            let d = abs(value - target)
            if d.isNaN { return .infinity }
            // Half a step of 8 significant bits: the exponent's power of two, over 2^8.
            let power = Float(bitPattern: max(abs(value), abs(target)).bitPattern & 0x7F80_0000)
            excess = max(excess, d - power / 256)
            scale = max(scale, abs(target))
        }
        return scale == 0 ? excess : excess / scale
    }
}

extension UnsafeMutablePointer<UInt16> {
    /// Writes eight floats from element `i` on, rounded to bfloat16 as the CPU's conversion
    /// (vcvtneps2bf16, which oneDNN's reorders use) rounds finite values: to nearest, ties to
    /// even. A NaN stays a NaN (quieted).
    @inlinable @inline(__always) public func storeBFloat16(_ value: Float8, _ i: Int) {
        let rounded = bfloat16Bits(unsafeBitCast(value, to: SIMD8<UInt32>.self))
        UnsafeMutableRawPointer(self + i).storeBytes(
            of: SIMD8<UInt16>(truncatingIfNeeded: rounded), as: SIMD8<UInt16>.self)
    }

    /// The eight values from element `i` on, as floats.
    @inlinable @inline(__always) public func loadBFloat16(_ i: Int) -> Float8 {
        let bits = UnsafeRawPointer(self + i).loadUnaligned(as: SIMD8<UInt16>.self)
        return unsafeBitCast(SIMD8<UInt32>(truncatingIfNeeded: bits) &<< 16, to: Float8.self)
    }
}

/// Writes `count` floats rounded to bfloat16 (as `storeBFloat16` rounds them) to `bits`, in
/// parallel.
public func roundToBFloat16(_ from: UnsafePointer<Float>, count: Int, into bits: UnsafeMutablePointer<UInt16>) {
    let values = UnsafeMutablePointer(mutating: from)
    forEachElementRange(count) { range in
        var i = range.lowerBound
        while i + 8 <= range.upperBound {
            bits.storeBFloat16(values.load8(i), i)
            i += 8
        }
        while i < range.upperBound {
            bits[i] = bfloat16Bits(values[i])
            i += 1
        }
    }
}

/// float32 bit patterns rounded to bfloat16 as `storeBFloat16` rounds them, each bfloat16 in the
/// lower half of its lane.
@inlinable @inline(__always) public func bfloat16Bits<Lanes: SIMD>(_ bits: Lanes) -> Lanes
where Lanes.Scalar == UInt32 {
    let rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
    // All ones in a NaN's lane (its magnitude above infinity's), in arithmetic: Swift compiles
    // a comparison of unsigned lanes into a loop over them.
    let nan = 0 &- ((0x7F80_0000 &- (bits & 0x7FFF_FFFF)) &>> 31)
    return rounded & ~nan | ((bits &>> 16) | 0x40) & nan
}

/// `value` rounded to bfloat16 as `storeBFloat16` rounds it.
@inlinable public func bfloat16Bits(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    return value.isNaN ? UInt16(bits >> 16) | 0x40 : UInt16((bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
}

/// Activations a loop reads and writes eight at a time (one at a time in a tail): float32 as
/// they are, or bfloat16, widened as they are read and rounded as they are written. A loop
/// generic over it is compiled once for each.
public protocol FloatElements {
    func load8(_ i: Int) -> Float8
    func value(at i: Int) -> Float
    func store8(_ value: Float8, _ i: Int)
    func store(_ value: Float, at i: Int)
}

extension UnsafeMutablePointer: FloatElements where Pointee == Float {
    @inlinable @inline(__always) public func value(at i: Int) -> Float { self[i] }
    @inlinable @inline(__always) public func store(_ value: Float, at i: Int) { self[i] = value }
}

/// A BFloat16Tensor's elements, read as floats and written rounded to bfloat16.
public struct BFloat16Elements: FloatElements {
    public let bits: UnsafeMutablePointer<UInt16>
    @inlinable public init(_ bits: UnsafeMutablePointer<UInt16>) { self.bits = bits }
    @inlinable @inline(__always) public func load8(_ i: Int) -> Float8 { bits.loadBFloat16(i) }
    @inlinable @inline(__always) public func value(at i: Int) -> Float { Float(bitPattern: UInt32(bits[i]) << 16) }
    @inlinable @inline(__always) public func store8(_ value: Float8, _ i: Int) { bits.storeBFloat16(value, i) }
    @inlinable @inline(__always) public func store(_ value: Float, at i: Int) { bits[i] = bfloat16Bits(value) }
}
