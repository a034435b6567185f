/// A seeded generator (xoshiro256**, seeded through SplitMix64) whose whole state is four words,
/// so runs are reproducible and checkpoints can save and restore it exactly.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Equatable {
    public private(set) var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    /// A generator for stream `stream` of `seed`: independent draws for, say, each epoch or each video.
    public init(seed: UInt64, stream: UInt64) {
        self.init(seed: seed &+ stream &* 0xD1B5_4A32_D192_ED03)
    }

    /// Restores a state saved from `words`.
    public init(words: [UInt64]) {
        precondition(words.count == 4, "a generator state is four words")
        state = (words[0], words[1], words[2], words[3])
    }

    public var words: [UInt64] { [state.0, state.1, state.2, state.3] }

    public mutating func next() -> UInt64 {
        let result = rotateLeft(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotateLeft(state.3, 45)
        return result
    }

    /// Uniform in [0, 1), with 24 random bits.
    public mutating func uniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Standard normal, by Box-Muller (one draw per call, so the stream position is simple to reason about).
    public mutating func normal() -> Float {
        let u1 = (Double(next() >> 11) + 1) * 0x1p-53  // (0, 1], so the logarithm is finite
        let u2 = Double(next() >> 11) * 0x1p-53
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// Uniform integer in 0..<bound.
    public mutating func below(_ bound: Int) -> Int { Int(next(upperBound: UInt64(bound))) }

    public static func == (a: SeededGenerator, b: SeededGenerator) -> Bool { a.words == b.words }

    private func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension Tensor {
    /// Fills with normal draws of mean 0 and standard deviation `std`.
    public func fillNormal(std: Float, using generator: inout SeededGenerator) {
        for i in 0..<count { data[i] = generator.normal() * std }
    }
}
