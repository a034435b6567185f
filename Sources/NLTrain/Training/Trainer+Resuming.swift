import Foundation
import NLData
import NLModels
import NLDistributed
import NLLayers
import NLTensor
import NLVideo

/// Where a run starts: rank 0's checkpoint (or weights to start from) given to every rank, and
/// its position put into this run's epochs.
extension Trainer {
    /// The state to start from, read by rank 0 and given to every rank: --resume, else the work
    /// directory's latest readable checkpoint (corrupt ones refused by name), else a fresh run
    /// from --init or [model] pretrained.
    func restore(model: Recognizer, optimizer: Optimizer) throws -> TrainingState {
        var state = TrainingState()
        try onRoot { state = try restoreOnRoot(model: model, optimizer: optimizer) }
        guard parallel.isDistributed else { return state }
        let snapshot =
            parallel.isRoot
            ? Checkpoint(model: model, optimizer: optimizer, state: state, config: config.text).file : SafeTensors()
        let shared = try SafeTensors(data: parallel.fromRoot(snapshot.serialized()), path: "rank 0's training state")
        guard !parallel.isRoot else { return state }
        return try Checkpoint(path: "rank 0's training state", file: shared).restore(model: model, optimizer: optimizer)
    }

    func restoreOnRoot(model: Recognizer, optimizer: Optimizer) throws -> TrainingState {
        var found: Checkpoint?
        if options.startOver, let folder = try workDirectory.setAsideCheckpoints() {
            log("starting over: the earlier checkpoints are set aside in \(folder)")
        }
        if let path = options.resume {
            found = try Checkpoint(path: path)
        } else {
            found = try workDirectory.latestCheckpoint(refused: { [weak self] in self?.log($0) })
        }
        if let checkpoint = found, let initial = options.initialWeights {
            log(
                "not using --init \(initial): resuming from \(checkpoint.path) wins (--start-over sets the work directory's checkpoints aside)"
            )
        }
        guard let checkpoint = found else {
            let initial = options.initialWeights ?? (config.model.pretrained.isEmpty ? nil : config.model.pretrained)
            if let initial {
                let weights = try Checkpoint(path: initial)
                try weights.checkSettings(of: model.spec)
                let report = model.load(from: try weights.modelState())
                log(
                    "initialised \(report.loaded.count) tensors from \(initial)"
                        + (report.isComplete ? "" : "; not loaded: \(report.summary)"))
            }
            return TrainingState()
        }
        let state = try checkpoint.restore(model: model, optimizer: optimizer)
        log("resuming from \(checkpoint.path)")
        if batchSizeIsAuto, let saved = try? checkpoint.config().train.batchSize, saved != TrainSection.autoBatchSize {
            config.train.batchSize = saved  // resolveAutoBatchSize gives it to the other ranks
            log("batch_size auto: \(saved), the batch of the run it resumes")
        }
        try workDirectory.keepMetrics(upTo: state.globalIteration, validationPending: state.validationPending)
        let changes = checkpoint.configChanges(to: config.text)
        if !changes.isEmpty {
            log("going on with a config that differs from the checkpoint's: \(changes.joined(separator: ", "))")
        }
        return state
    }

    /// Puts the checkpoint's position into this run's epochs. Written with another number of
    /// clips an iteration (another batch_size or number of processes), it goes on from the clips
    /// of the epoch it has seen, not from its iteration count; past the end of an epoch of this
    /// data (a training list that shrank, a crafted file), the epoch counts as done after its
    /// last iteration, said, never skipped. The global iteration, which the schedule runs on,
    /// follows from the epoch and iteration.
    func place(_ state: inout TrainingState, iterationsPerEpoch: Int) {
        let globalBatch = config.train.batchSize * config.train.accumulate * parallel.size
        defer { state.globalBatch = globalBatch }
        if let saved = state.globalBatch, saved != globalBatch {
            let seen = state.iteration * saved  // both bounded (TrainingState): no overflow
            state.iteration = min(seen / globalBatch, iterationsPerEpoch)
            state.globalIteration = state.epoch * iterationsPerEpoch + state.iteration
            log(
                "the checkpoint was written at \(saved) clips an iteration and this run takes \(globalBatch): epoch \(state.epoch + 1) goes on after "
                    + "\(state.iteration * globalBatch) of the \(seen) clips it had seen (iteration \(state.iteration)), global iteration \(state.globalIteration)"
            )
        }
        if state.iteration > iterationsPerEpoch {
            log(
                "the checkpoint is at iteration \(state.iteration) of epoch \(state.epoch + 1), but an epoch of this data has \(iterationsPerEpoch) "
                    + "(the training list changed?): epoch \(state.epoch + 1) counts as done")
            state.iteration = iterationsPerEpoch
        }
        let global = state.epoch * iterationsPerEpoch + state.iteration
        if global != state.globalIteration {
            log(
                "global iteration \(global) for epoch \(state.epoch + 1) iteration \(state.iteration) of \(iterationsPerEpoch)-iteration epochs "
                    + "(the checkpoint says \(state.globalIteration)): the learning-rate schedule follows the epochs")
            state.globalIteration = global
        }
    }
}
