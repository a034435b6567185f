import Foundation
import NLDistributed
import NLModels

/// What a process of a data-parallel job (mpirun -np N nltrain ...) does beyond training alone,
/// as Horovod does it: rank 0's state goes to every rank, gradients are averaged over the ranks
/// after each backward pass, the ranks agree on when to stop. Without mpirun there is one rank
/// and none of this calls MPI.
struct DataParallel {
    let communicator: Communicator?

    init(_ communicator: Communicator? = Communicator.world) { self.communicator = communicator }

    var rank: Int { communicator?.rank ?? 0 }
    var size: Int { communicator?.size ?? 1 }
    var isRoot: Bool { rank == 0 }
    /// True when there is more than this process.
    var isDistributed: Bool { size > 1 }

    /// Gradients are packed into buckets of this many floats (100 MB) for each allreduce.
    static let bucketFloats = 25 << 20

    /// Every rank's gradients summed and divided by the ranks, in place: the gradient of the mean
    /// loss over the global batch. Last parameters first, as backward finishes them.
    func averageGradients(of parameters: [(name: String, parameter: Parameter)], bucket: inout [Float]) {
        guard let communicator, isDistributed else { return }
        let gradients = parameters.map(\.parameter.gradient).reversed()
        let scale = 1 / Float(size)
        if bucket.count < Self.bucketFloats { bucket = [Float](repeating: 0, count: Self.bucketFloats) }
        bucket.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            var pending: [Tensor] = [], filled = 0
            func flush() {
                communicator.sum(base, count: filled)
                var offset = 0
                for g in pending {
                    let (destination, source) = (g.data, base + offset)
                    for i in 0..<g.count { destination[i] = source[i] * scale }
                    offset += g.count
                }
                (pending, filled) = ([], 0)
            }
            for g in gradients {
                if filled + g.count > Self.bucketFloats && filled > 0 { flush() }
                if g.count > Self.bucketFloats {  // larger than a bucket: reduced where it is
                    let values = g.data
                    communicator.sum(values, count: g.count)
                    for i in 0..<g.count { values[i] *= scale }
                    continue
                }
                (base + filled).update(from: g.data, count: g.count)
                pending.append(g)
                filled += g.count
            }
            if filled > 0 { flush() }
        }
    }

    /// Rank 0's bytes on every rank (its own on rank 0).
    func fromRoot(_ data: @autoclosure () -> Data) -> Data {
        guard let communicator, isDistributed else { return data() }
        return communicator.broadcast(isRoot ? data() : Data())
    }

    /// The largest of the ranks' values: how they agree on a stop that any of them asks for.
    func maximum(_ value: Int) -> Int {
        guard let communicator, isDistributed else { return value }
        return communicator.maximum(value)
    }

    /// The sums over the ranks.
    func sum(_ values: [Double]) -> [Double] {
        guard let communicator, isDistributed else { return values }
        return communicator.sum(values)
    }

    /// Every rank's bytes on rank 0, in rank order; nil elsewhere.
    func gather(_ data: Data) -> [Data]? {
        guard let communicator, isDistributed else { return [data] }
        return communicator.gather(data)
    }

    /// sync_bn: every BatchNorm's batch statistics over the whole global batch.
    func synchronizeBatchNorms(of model: Layer) {
        guard let communicator, isDistributed else { return }
        for norm in ([model] + model.descendants).compactMap({ $0 as? BatchNorm3d }) {
            norm.synchronize = { sums in sums.withUnsafeMutableBufferPointer { communicator.sum($0.baseAddress!, count: $0.count) } }
        }
    }
}
