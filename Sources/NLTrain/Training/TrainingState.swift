import Foundation

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
        var m = ["format": Self.format, "config": config, "epoch": "\(epoch)", "iteration": "\(iteration)",
                 "global_iteration": "\(globalIteration)", "finished": finished ? "true" : "false"]
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
              let global = m["global_iteration"].flatMap(Int.init) else {
            throw CheckpointError(path, "the checkpoint's metadata lacks its position (epoch, iteration, global_iteration)")
        }
        guard epoch >= 0, iteration >= 0, global >= iteration else {
            throw CheckpointError(path, "the checkpoint's position is impossible (epoch \(epoch), iteration \(iteration), global_iteration \(global))")
        }
        (self.epoch, self.iteration, globalIteration) = (epoch, iteration, global)
        if let batch = m["global_batch"] {
            guard let value = Int(batch), value > 0 else { throw CheckpointError(path, "the checkpoint's global_batch '\(batch)' is not a positive number") }
            globalBatch = value
        }
        bestTop1 = m["best_top1"].flatMap(Double.init)
        bestEpoch = m["best_epoch"].flatMap(Int.init)
        finished = m["finished"] == "true"
        validationPending = m["validation_pending"] == "true"
    }
}
