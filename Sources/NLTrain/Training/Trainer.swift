import Foundation
import NLData
import NLModels
import NLDistributed
import NLLayers
import NLTensor
import NLVideo

/// `nltrain`: trains the config's model on its dataset, resumably, alone or as one rank of a
/// data-parallel job (mpirun): then every rank trains on its share of each batch, the gradients
/// are averaged, and rank 0 alone writes the work directory. What it tells goes through `log`.
public final class Trainer: @unchecked Sendable {
    public struct Options {
        /// A checkpoint to resume from instead of the work directory's latest.
        public var resume: String?
        /// Weights to start from (model only), instead of [model] pretrained.
        public var initialWeights: String?
        /// Stop, after a checkpoint, at the first iteration boundary past this many seconds.
        public var maxTime: TimeInterval?
        /// Set the work directory's checkpoints aside and train from the start.
        public var startOver = false
        /// The numerical self-check's verdict, for the log (SelfCheck.ensure).
        public var selfCheck: String?
        public init() {}
    }

    /// The config; batch_size = auto becomes a number before the loaders are made.
    public internal(set) var config: Config
    /// Whether the config said batch_size = auto (the same on every rank).
    let batchSizeIsAuto: Bool
    public let options: Options
    let parallel = DataParallel()
    /// Rank 0's; nil on the others.
    var workDirectory: WorkDirectory!
    /// What the run tells (RunLog): `log("...")`, its iteration lines, metrics, TensorBoard.
    let log: RunLog
    /// The training set's class names, in index order: every checkpoint carries them.
    var classes: [String] = []
    let started = Date()

    public init(config: Config, options: Options, output: FileHandle = .standardOutput) {
        self.config = config
        batchSizeIsAuto = config.train.batchSize == TrainSection.autoBatchSize
        self.options = options
        log = RunLog(output: output, parallel: parallel)
    }

    /// Trains until every epoch is done (exit 0), the time budget or a signal stops it after a
    /// checkpoint (75), or an error. The work directory's lock is held throughout.
    public func run() throws -> ExitStatus {
        try parallel.requireSameSettings(config)
        try config.requirePrecision()
        try openWorkDirectory()
        defer { workDirectory?.unlock() }
        let model = try config.makeModel(seed: UInt64(config.train.seed))
        let optimizer = Optimizer(model: model, config.train)
        var state = try restore(model: model, optimizer: optimizer)
        guard hasEpochsLeft(&state) else { return .done }
        if config.train.syncBN { parallel.synchronizeBatchNorms(of: model) }
        log("running on \(machineDescription)")
        if let line = options.selfCheck { log(line) }
        for warning in config.warnings { log("warning: \(warning)") }
        let (training, validation) = try loaders(for: model)
        try chooseConvolutions(model, clipShape: DataSetup.forwardShape(training, config: config))
        try onRoot { try workDirectory.write(config.text, to: "config.cfg") }
        place(&state, iterationsPerEpoch: training.batchesPerEpoch)
        let step = TrainingStep(
            model: model, optimizer: optimizer, train: config.train, iterationsPerEpoch: training.batchesPerEpoch,
            parallel: parallel)
        let counts = training.dataset.classCounts  // padded to the classifier's outputs: none there
        step.classWeights = config.train.classWeights.weights(
            counts: counts + [Int](repeating: 0, count: max(0, config.model.spec.numClasses - counts.count)))
        if !step.classWeights.isEmpty {
            log(
                "class weights in the loss: \(step.classWeights.map { String(format: "%.3g", $0) }.joined(separator: " "))"
            )
        }
        try startLogging(state, training: training)

        // The last run may have been stopped during this validation: it comes before training on.
        if state.validationPending,
            let stopped = try finishValidation(step, validation, training: training, state: &state)
        {
            return stopped
        }
        if case let reason = signalled(), reason != .none {
            log("stopped by \(reason.describe(maxTime: nil)) before training; run the same command to continue")
            return .notFinished
        }
        if log.interactive && parallel.isRoot {
            log.bar = ProgressDisplay(
                total: config.train.epochs * training.batchesPerEpoch, label: "training", unit: "iterations",
                completed: state.globalIteration, output: log.output)
        }
        while state.epoch < config.train.epochs {
            if let stopped = try trainEpoch(step, training, state: &state) { return stopped }
            if let stopped = try endEpoch(step, training, validation, state: &state) { return stopped }
        }
        log(
            "finished \(config.train.epochs) epochs in \(ProgressDisplay.duration(Date().timeIntervalSince(started))), "
                + "peak memory \(ProcessMemory.peakBytes >> 20) MiB"
                + (state.bestTop1.map {
                    String(
                        format: "; best validation top-1 %.2f%% (epoch %d), %@/best.safetensors", $0 * 100,
                        state.bestEpoch ?? 0, config.train.workDir)
                } ?? "")
                + "; last checkpoint \(config.train.workDir)/\(checkpointName(globalIteration: state.globalIteration))")
        return .done
    }

    /// Trains the rest of the state's epoch, checkpointing every checkpoint_every_iterations. A stop
    /// asked for mid-epoch writes a checkpoint and returns the run's exit status (75).
    func trainEpoch(
        _ step: TrainingStep, _ loader: DataLoader, state: inout TrainingState
    ) throws -> ExitStatus? {
        let iterations = loader.batchesPerEpoch
        let iterator = loader.batches(epoch: state.epoch, from: state.iteration)
        iterator.shouldStop = stopWhileWaiting
        defer { iterator.stop() }
        var dataStart = Date()
        while true {
            let batch: Batch
            do {
                guard let next = try iterator.next() else { break }
                batch = next
            } catch is BatchIterator.Stopped {
                if state.globalIteration > 0 { try checkpoint(step, state) }
                log(
                    "stopped by \(receivedSignal()?.describe(maxTime: nil) ?? "a signal") while waiting for data at epoch \(state.epoch + 1) iteration \(state.iteration); run the same command to continue"
                )
                return .notFinished
            }
            let dataTime = Date().timeIntervalSince(dataStart)
            let stepStart = Date()
            let outcome: TrainingStep.Outcome
            do {
                outcome = try step.run(batch.clips, labels: batch.labels, globalIteration: state.globalIteration)
            } catch let divergence as Divergence {
                throw TrainingError(describe(divergence))
            }
            state.iteration += 1
            state.globalIteration += 1
            log.meter.add(
                loss: Double(outcome.loss), correct: outcome.correct, clips: batch.count, data: dataTime,
                step: Date().timeIntervalSince(stepStart))
            log.bar?.advance()
            if state.globalIteration % config.train.logEvery == 0 || state.iteration == iterations {
                log.report(
                    state: state, epochs: config.train.epochs, lr: outcome.lr, iterationsPerEpoch: iterations,
                    left: config.train.epochs * iterations - state.globalIteration)
            }
            // The epoch's last iteration is checkpointed, validated and stopped at by endEpoch.
            if state.iteration < iterations {
                if config.train.checkpointEveryIterations > 0
                    && state.globalIteration % config.train.checkpointEveryIterations == 0
                {
                    try checkpoint(step, state)
                }
                if case let reason = stopReason(), reason != .none {
                    try checkpoint(step, state)
                    log(
                        "stopped by \(reason.describe(maxTime: options.maxTime)) at epoch \(state.epoch + 1) iteration \(state.iteration); run the same command to continue"
                    )
                    return .notFinished
                }
            }
            dataStart = Date()
        }
        return nil
    }

    /// Asked while the run waits for a batch (a read may stall for good): a signal this process
    /// received. Not in a data-parallel job, whose ranks stop together at iteration boundaries
    /// (a stalled read there ends at data.read_timeout).
    var stopWhileWaiting: (() -> Bool)? {
        parallel.isDistributed ? nil : { StopSignal.received.load(ordering: .relaxed) != 0 }
    }

    /// After an epoch's last iteration: its checkpoint, written before its validation so that a
    /// kill loses no training, the validation when due, and a stop asked for (75).
    func endEpoch(
        _ step: TrainingStep, _ training: DataLoader, _ validation: DataLoader?, state: inout TrainingState
    ) throws -> ExitStatus? {
        state.epoch += 1
        state.iteration = 0
        state.validationPending =
            validation != nil && (state.epoch % config.train.evalEvery == 0 || state.epoch == config.train.epochs)
        state.finished = state.epoch == config.train.epochs && !state.validationPending
        let due = config.train.checkpointEvery > 0 && state.epoch % config.train.checkpointEvery == 0
        let written = due || state.epoch == config.train.epochs || state.validationPending
        if written { try checkpoint(step, state) }
        if state.validationPending,
            let stopped = try finishValidation(step, validation, training: training, state: &state)
        {
            return stopped
        }
        let reason = stopReason()
        guard !state.finished, reason != .none else { return nil }
        if !written { try checkpoint(step, state) }
        log(
            "stopped by \(reason.describe(maxTime: options.maxTime)) after epoch \(state.epoch); run the same command to continue"
        )
        return .notFinished
    }

    /// False when the run has done every epoch of this config; a finished run given more epochs
    /// goes on, on this config's schedule.
    func hasEpochsLeft(_ state: inout TrainingState) -> Bool {
        if state.epoch >= config.train.epochs && !state.validationPending {
            log(
                "\(config.train.workDir) has finished all \(config.train.epochs) epochs"
                    + (state.bestTop1.map { String(format: "; best validation top-1 %.2f%%", $0 * 100) } ?? "")
                    + "; nothing to do")
            return false
        }
        if state.finished {
            log(
                "extending the finished run from \(state.epoch) to \(config.train.epochs) epochs; the learning-rate schedule is this config's"
            )
            state.finished = false
        }
        return true
    }

    /// What to say of a run that diverged: where, and the checkpoint to go back to (the newest
    /// that loads; a diverged run writes none).
    func describe(_ divergence: Divergence) -> String {
        let last = parallel.isRoot ? (try? workDirectory.latestCheckpoint(refused: { _ in }))??.path : nil
        return "the run diverged: \(divergence); nothing was written after it. "
            + (last.map {
                "The last checkpoint that loads is \($0): lower train.lr (or set train.grad_clip) and run the same command to resume from it"
            }
                ?? "No checkpoint was written before it: lower train.lr (or set train.grad_clip) and start again")
    }

    /// Rank 0 writes the checkpoint; the weights and momentum are the same on every rank.
    func checkpoint(_ step: TrainingStep, _ state: TrainingState) throws {
        try onRoot {
            try workDirectory.write(
                Checkpoint(
                    model: step.model, optimizer: step.optimizer, state: state, config: config.text, classes: classes),
                name: checkpointName(globalIteration: state.globalIteration))
            workDirectory.prune(keep: config.train.keepCheckpoints)
        }
    }

    /// Runs `body` on rank 0 alone and makes its failure every rank's: the others throw the same
    /// status, silently (rank 0 reports it).
    func onRoot(_ body: () throws -> Void) throws {
        var failure = ""
        if parallel.isRoot {
            do { try body() } catch {
                guard parallel.isDistributed else { throw error }
                let (status, message) = exitStatus(for: error)
                failure = "\(status.rawValue) \(message)"
            }
        }
        let shared = parallel.fromRoot(text: failure)
        guard let space = shared.firstIndex(of: " "), let code = Int32(shared[..<space]),
            let status = ExitStatus(rawValue: code)
        else { return }
        throw SharedFailure(status: status, message: String(shared[shared.index(after: space)...]))
    }
}
