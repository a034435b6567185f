import CDNNL
import Foundation
import NLTensor
import Synchronization

/// A convolution weight's bfloat16 layout in oneDNN whose innermost block pairs two inputs' values
/// for one output, as the bfloat16 instructions multiply pairs along the sum: forward's
/// "AcdeB64a2b", "AcdeB48a2b", "AcdeB32a2b" on AVX512_BF16, and any other blocking ending in such a
/// pair. The project's own loop writes it from the float32 weight (kT, kH, kW, Cin, Cout), a pair
/// of rows at a time: oneDNN 2.6.3's reorders into these layouts ran at 6-14 GB/s inside a
/// training step on a Zen 4 (slowest where a block is 48 outputs), where its other reorders reach
/// 28, and the loop takes about half their time (docs/speed.md). Backward data's layouts pair
/// outputs, which lie side by side in a row of the float32 weight: there the loop, scattering
/// 32-bit words, was no faster than oneDNN's reorder from forward's copy, which stays.
/// WeightConversion checks the loop against the reorder before it uses it.
struct PairedWeightLayout {
    private let outputs, inputs, taps: Int
    /// Where each index of a dimension lands, in 32-bit words: each output, each input, each tap
    /// ((t, h, w) of the kernel, in that order). Both inputs of a pair give the pair's word.
    private let outputWords, inputWords, tapWords: [Int]
    /// Whether outputs 16k..<16k+16 lie in consecutive words, for each k.
    private let consecutive: [Bool]

    /// The layout, or nil where it is not blocked with a pair of inputs innermost.
    init?(_ layout: dnnl_memory_desc_t) {
        func values(_ dims: dnnl_dims_t) -> [Int] {
            withUnsafeBytes(of: dims) { $0.bindMemory(to: Int64.self).map(Int.init) }
        }
        let blocking = layout.format_desc.blocking
        let blockCount = Int(blocking.inner_nblks)
        guard layout.ndims == 5, layout.data_type == dnnl_bf16, layout.format_kind == dnnl_blocked,
            layout.offset0 == 0, layout.extra.flags == 0, values(layout.padded_offsets).allSatisfy({ $0 == 0 }),
            blockCount > 0
        else { return nil }
        let (blocks, blockDims) = (
            values(blocking.inner_blks)[..<blockCount], values(blocking.inner_idxs)[..<blockCount]
        )
        guard blockDims.last == 1, blocks.last == 2 else { return nil }
        let (strides, dims) = (values(blocking.strides), values(layout.dims))

        // An element's offset along one dimension: its block's, plus its place in the inner
        // blocks, the last of them the fastest; a dimension blocked twice (the inputs of
        // AcdeB16b64a2b, a layout of the kind AMX kernels read) has a digit in each.
        func offset(_ index: Int, along dim: Int) -> Int {
            let blockSize = zip(blocks, blockDims).filter { $0.1 == dim }.map(\.0).reduce(1, *)
            var (result, within) = index.quotientAndRemainder(dividingBy: blockSize)
            result *= strides[dim]
            var step = 1
            for (block, blockDim) in zip(blocks, blockDims).reversed() {
                if blockDim == dim {
                    result += within % block * step
                    within /= block
                }
                step *= block
            }
            return result
        }
        func words(along dim: Int) -> [Int]? {
            let elements = (0..<dims[dim]).map { offset($0, along: dim) }
            let paired = dim == 1
            // A pair's second element sits right after its first; all else on 32-bit boundaries.
            guard
                elements.indices.allSatisfy({
                    paired && $0 % 2 == 1
                        ? elements[$0] == elements[$0 - 1] + 1
                        : elements[$0] % 2 == 0
                })
            else { return nil }
            return elements.map { $0 / 2 }
        }
        guard let outputWords = words(along: 0), let inputWords = words(along: 1), let t = words(along: 2),
            let h = words(along: 3), let w = words(along: 4)
        else { return nil }
        (outputs, inputs, taps) = (dims[0], dims[1], dims[2] * dims[3] * dims[4])
        (self.outputWords, self.inputWords) = (outputWords, inputWords)
        tapWords = t.flatMap { t in h.flatMap { h in w.map { t + h + $0 } } }
        consecutive = (0..<outputs / 16).map { k in
            (1..<16).allSatisfy { outputWords[16 * k + $0] == outputWords[16 * k] + $0 }
        }
    }

    /// Writes `weight`'s values rounded to bfloat16 into `layout`'s places (not its padding,
    /// which stays as it was: zero, in a buffer OneDNN.Memory zeroed).
    /// Each word holds two inputs' values for one output, from two rows of the weight.
    func write(_ weight: UnsafePointer<Float>, into layout: UnsafeMutableRawPointer) {
        let words = layout.assumingMemoryBound(to: UInt32.self)
        let pairs = (inputs + 1) / 2
        Parallel.forRanges(taps * pairs, minimumChunk: max(1, 16384 / outputs)) { _, rows in
            for row in rows {
                let (tap, pair) = row.quotientAndRemainder(dividingBy: pairs)
                let first = weight + (tap * inputs + 2 * pair) * outputs
                let second = 2 * pair + 1 < inputs ? first + outputs : nil
                let base = words + tapWords[tap] + inputWords[2 * pair]
                var o = 0
                if let second {
                    while o + 16 <= outputs, consecutive[o / 16] {
                        let low = bfloat16Bits(UnsafeRawPointer(first + o).loadUnaligned(as: SIMD16<UInt32>.self))
                        let high = bfloat16Bits(UnsafeRawPointer(second + o).loadUnaligned(as: SIMD16<UInt32>.self))
                        UnsafeMutableRawPointer(base + outputWords[o]).storeBytes(
                            of: low | high &<< 16, as: SIMD16<UInt32>.self)
                        o += 16
                    }
                }
                for o in o..<outputs {
                    let high = second.map { UInt32(bfloat16Bits($0[o])) << 16 } ?? 0
                    base[outputWords[o]] = UInt32(bfloat16Bits(first[o])) | high
                }
            }
        }
    }
}

/// The float32 weight's conversion into one of a primitive's bfloat16 layouts: the own loop where
/// the layout is paired and the loop gives the bits of oneDNN's reorder on this machine (tried on
/// a pattern of the weight's size when made: a newer library or another CPU may choose layouts
/// the loop was never run on), oneDNN's reorder otherwise.
public final class WeightConversion {
    private let own: PairedWeightLayout?
    private let reorder: OneDNN.Primitive
    private let weight: OneDNN.Memory

    init(from weight32: dnnl_memory_desc_t, to layout: dnnl_memory_desc_t) {
        let (reorder, weight) = (OneDNN.reorder(weight32, layout), OneDNN.Memory(weight32, allocated: false))
        (self.reorder, self.weight) = (reorder, weight)
        own = PairedWeightLayout(layout).flatMap { paired in
            let key = withUnsafeBytes(of: layout) { Data($0) }
            return Self.verdicts.withLock { verdicts in
                if verdicts[key] == nil {
                    verdicts[key] = Self.loop(paired, givesTheBitsOf: reorder, from: weight, into: layout)
                }
                return verdicts[key]!
            } ? paired : nil
        }
    }

    /// Whether the loop gave the reorder's bits, for each layout tried in this process.
    private static let verdicts = Mutex<[Data: Bool]>([:])

    /// Both write a pattern of the weight's size over zeros (for the padding), and are compared.
    private static func loop(
        _ paired: PairedWeightLayout, givesTheBitsOf reorder: OneDNN.Primitive, from weight: OneDNN.Memory,
        into layout: dnnl_memory_desc_t
    ) -> Bool {
        let pattern = Tensor(zeros: [weight.bytes / 4])
        for i in 0..<pattern.count {  // signs and fractions that differ from neighbour to neighbour
            let hash = UInt32(truncatingIfNeeded: i &* 2_654_435_761)
            pattern.data[i] = Float(bitPattern: (hash & 0x8000_0000) | 0x3F80_0000 | (hash >> 9))
        }
        let (byReorder, byLoop) = (OneDNN.Memory(layout, zeroed: true), OneDNN.Memory(layout, zeroed: true))
        weight.point(to: pattern.data)
        reorder.run([(DNNL_ARG_FROM, weight), (DNNL_ARG_TO, byReorder)])
        paired.write(pattern.data, into: byLoop.data)
        return memcmp(byReorder.data, byLoop.data, byLoop.bytes) == 0
    }

    /// The conversion of a float32 weight (outputs, inputs, kernel) into oneDNN's layout `tag`,
    /// as a primitive may choose it on another CPU (tests).
    public convenience init(outputs: Int, inputs: Int, kernel: Size3, into tag: dnnl_format_tag_t) {
        let dims = [outputs, inputs, kernel.t, kernel.h, kernel.w]
        self.init(
            from: OneDNN.descriptor(dims, dnnl_f32, dnnl_dhwio), to: OneDNN.descriptor(dims, dnnl_bf16, tag))
    }

    /// Whether the own loop converts (else oneDNN's reorder).
    public var isOwn: Bool { own != nil }

    func run(_ value: Tensor, into destination: OneDNN.Memory) {
        if let own {
            own.write(value.data, into: destination.data)
        } else {
            weight.point(to: value.data)
            reorder.run([(DNNL_ARG_FROM, weight), (DNNL_ARG_TO, destination)])
        }
    }
}
