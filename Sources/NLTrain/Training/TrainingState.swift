import Foundation
import NLData
import NLLayers
import NLTensor
import NLVideo

/// Where a run is, kept in every checkpoint's metadata beside the resolved config.
public struct TrainingState: Sendable, Equatable {
    /// The epoch under way (0-based) and the batches of it already done.
    public var epoch = 0
    public var iteration = 0
    /// Batches done over the whole run.
    public var globalIteration = 0
    public var bestTop1: Double?
    public var bestEpoch: Int?
    /// True once every epoch is done.
    public var finished = false
    /// The epoch just done is still to be validated (a signal stopped its validation).
    public var validationPending = false
    /// Clips per iteration over every process when the checkpoint was written (nil in older
    /// checkpoints): a run resumed with another batch size or process count maps its position.
    public var globalBatch: Int?

    public static let format = "nl-checkpoint-1"

    public init() {}

    public func metadata(config: String) -> [String: String] {
        var m = [
            "format": Self.format, "config": config, "epoch": "\(epoch)", "iteration": "\(iteration)",
            "global_iteration": "\(globalIteration)", "finished": finished ? "true" : "false",
        ]
        if let bestTop1 { m["best_top1"] = "\(bestTop1)" }
        if let bestEpoch { m["best_epoch"] = "\(bestEpoch)" }
        if validationPending { m["validation_pending"] = "true" }
        if let globalBatch { m["global_batch"] = "\(globalBatch)" }
        return m
    }

    /// The state a checkpoint's metadata holds; `path` names it in errors.
    public init(metadata m: [String: String], path: String) throws {
        guard m["format"] == Self.format else {
            throw CheckpointError(path, "not a training checkpoint (its metadata has no format \(Self.format))")
        }
        guard let epoch = m["epoch"].flatMap(Int.init), let iteration = m["iteration"].flatMap(Int.init),
            let global = m["global_iteration"].flatMap(Int.init)
        else {
            throw CheckpointError(
                path, "the checkpoint's metadata lacks its position (epoch, iteration, global_iteration)")
        }
        // No run gets past these (a config trains at most 100,000 epochs): a position beyond them
        // is a damaged or crafted file, and the arithmetic on positions stays far from overflow.
        guard (0...Self.maximumEpochs).contains(epoch), (0...Self.maximumIterations).contains(iteration),
            (iteration...Self.maximumIterations).contains(global)
        else {
            throw CheckpointError(
                path,
                "the checkpoint's position is impossible (epoch \(epoch), iteration \(iteration), global_iteration \(global))"
            )
        }
        (self.epoch, self.iteration, globalIteration) = (epoch, iteration, global)
        if let batch = m["global_batch"] {
            guard let value = Int(batch), (1...(1 << 30)).contains(value) else {
                throw CheckpointError(path, "the checkpoint's global_batch '\(batch)' is not a possible batch")
            }
            globalBatch = value
        }
        bestTop1 = m["best_top1"].flatMap(Double.init)
        bestEpoch = m["best_epoch"].flatMap(Int.init)
        finished = m["finished"] == "true"
        validationPending = m["validation_pending"] == "true"
        // A run finishes at an epoch's end, validated.
        guard !finished || (iteration == 0 && !validationPending) else {
            throw CheckpointError(
                path,
                "the checkpoint says its run finished at epoch \(epoch) iteration \(iteration)\(validationPending ? " with a validation to do" : ""): impossible"
            )
        }
    }

    static let maximumEpochs = 100_000
    static let maximumIterations = 1 << 40
}
