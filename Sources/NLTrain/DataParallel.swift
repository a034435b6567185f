import Foundation
import NLDistributed
import NLModels
import NLData
import NLLayers
import NLTensor
import NLVideo

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

    /// Rank 0's `text`, on every rank.
    func fromRoot(text: String) -> String { String(decoding: fromRoot(Data(text.utf8)), as: UTF8.self) }

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

    /// Settings a rank may hold its own value of: where its files are and how it reads them.
    /// Every other resolved setting (model, schedule, batch, sampling, seed) shapes the job and
    /// must be the same on every rank, or the ranks take different steps and wait for each other
    /// in a collective for ever.
    static let perRankSettings: Set<String> = [
        "data.root", "data.train_annotations", "data.val_annotations", "data.classes",
        "data.workers", "data.read_timeout", "train.work_dir", "train.log_every", "train.tensorboard",
    ]

    /// Fails on every rank (64, rank 0 saying which keys differ and how) unless the ranks run one
    /// config in everything but `perRankSettings`: `mpirun -np 1 nltrain ... --set
    /// train.batch_size=2 : -np 1 nltrain ... --set train.batch_size=4` trained a few iterations
    /// and then hung.
    func requireSameSettings(_ config: Config) throws {
        guard isDistributed else { return }
        let lines = config.text.split(whereSeparator: \.isNewline).map(String.init)
        var section = "", mine: [String] = []
        for line in lines {
            if line.hasPrefix("[") { section = String(line.dropFirst().prefix { $0 != "]" }); continue }
            guard let equals = line.firstIndex(of: "="), !line.hasPrefix("#") else { continue }
            let key = "\(section).\(line[..<equals].trimmingCharacters(in: .whitespaces))"
            if !Self.perRankSettings.contains(key) {
                mine.append("\(key)=\(line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces))")
            }
        }
        var differing: [String] = []
        if let all = gather(Data(mine.joined(separator: "\n").utf8)) {
            func settings(_ data: Data) -> [String: String] {
                Dictionary(
                    String(decoding: data, as: UTF8.self).split(separator: "\n").map { line in
                        let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                        return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
                    }, uniquingKeysWith: { a, _ in a })
            }
            let root = settings(all[0])
            for (rank, data) in all.enumerated().dropFirst() {
                let other = settings(data)
                for key in Set(root.keys).union(other.keys).sorted() where root[key] != other[key] {
                    differing.append(
                        "\(key) is \(root[key] ?? "unset") on rank 0 and \(other[key] ?? "unset") on rank \(rank)")
                }
            }
        }
        let verdict = fromRoot(text: differing.prefix(12).joined(separator: "; "))
        guard verdict.isEmpty else {
            throw SharedFailure(
                status: .usage,
                message: "the processes of this job run different configs: \(verdict); give every rank the same "
                    + "config and --set values (only paths, workers, read_timeout, log_every and tensorboard may differ)"
            )
        }
    }

    /// sync_bn: every BatchNorm's batch statistics over the whole global batch.
    func synchronizeBatchNorms(of model: Layer) {
        guard let communicator, isDistributed else { return }
        for norm in ([model] + model.descendants).compactMap({ $0 as? BatchNorm3d }) {
            norm.synchronize = { sums in
                sums.withUnsafeMutableBufferPointer { communicator.sum($0.baseAddress!, count: $0.count) }
            }
        }
    }
}
