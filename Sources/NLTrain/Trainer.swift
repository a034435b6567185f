import Foundation
import NLData
import NLModels
import Synchronization

/// SIGTERM and SIGINT ask a run to stop at the next iteration boundary, after a checkpoint.
public enum StopSignal {
    static let received = Atomic<Int32>(0)

    public static func install() {
        signal(SIGTERM) { StopSignal.received.store($0, ordering: .relaxed) }
        signal(SIGINT) { StopSignal.received.store($0, ordering: .relaxed) }
        // A parent may have started us with them blocked (signal masks are inherited).
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)
    }
}

/// Why a run stops before its end; the ranks of a job agree on the largest any of them asks for.
enum StopReason: Int, Comparable {
    case none = 0, timeBudget, sigint, sigterm

    static func < (a: StopReason, b: StopReason) -> Bool { a.rawValue < b.rawValue }

    func describe(maxTime: TimeInterval?) -> String {
        switch self {
        case .none: "nothing"
        case .timeBudget: "the time budget (--max-time \(ProgressDisplay.duration(maxTime ?? 0)))"
        case .sigint: "SIGINT"
        case .sigterm: "SIGTERM"
        }
    }
}

/// `nltrain`: trains the config's model on its dataset, resumably, alone or as one rank of a
/// data-parallel job (mpirun): then every rank trains on its share of each batch, the gradients
/// are averaged, and rank 0 alone writes the work directory. `log` may be called from the
/// loader's threads (bad videos), hence the lock.
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
        public init() {}
    }

    public let config: Config
    public let options: Options
    private let output: FileHandle
    private let interactive: Bool
    private let parallel = DataParallel()
    private var workDirectory: WorkDirectory!
    /// The run's TensorBoard events (rank 0, with [train] tensorboard).
    private var tensorBoard: EventFileWriter?
    private let started = Date()
    private let logLock = NSLock()

    public init(config: Config, options: Options, output: FileHandle = .standardOutput) {
        self.config = config
        self.options = options
        self.output = output
        interactive = isatty(output.fileDescriptor) != 0
    }

    /// Trains until every epoch is done (exit 0), the time budget or a signal stops it after a
    /// checkpoint (75), or an error. The work directory's lock is held throughout.
    public func run() throws -> ExitStatus {
        try config.require(["data.root", "data.train_annotations", "train.work_dir"], by: "nltrain")
        try onRoot {
            workDirectory = try WorkDirectory(config.train.workDir)
            try workDirectory.lock()
            let unfinished = workDirectory.removeUnfinishedWrites()
            if !unfinished.isEmpty { log("removed what a killed run left half-written: \(unfinished.joined(separator: ", "))") }
            try workDirectory.write(config.text, to: "config.cfg")
        }

        let model = Recognizer(spec: config.model.spec, seed: UInt64(config.train.seed))
        let sgd = SGD(model: model, config.train)
        var state = try restore(model: model, sgd: sgd)
        if state.epoch >= config.train.epochs && !state.validationPending {
            log("\(config.train.workDir) has finished all \(config.train.epochs) epochs" + (state.bestTop1.map { String(format: "; best validation top-1 %.2f%%", $0 * 100) } ?? "") + "; nothing to do")
            return .done
        }
        if state.finished {
            log("extending the finished run from \(state.epoch) to \(config.train.epochs) epochs; the learning-rate schedule is this config's")
            state.finished = false
        }
        if config.train.syncBN { parallel.synchronizeBatchNorms(of: model) }

        log("running on \(machineDescription)")
        let trainSet = try DataSetup.dataset(config, split: .train)
        log("training set: \(trainSet.summary)")
        for problem in trainSet.problems.prefix(10) { log("  \(problem)") }
        if let problem = trainSet.labelProblem(numClasses: config.model.spec.numClasses) { throw problem }
        guard trainSet.classes.count <= config.model.spec.numClasses else {
            throw ConfigError(source: config.sources["model.num_classes"] ?? ConfigSource(file: "config", line: 0),
                              message: "model.num_classes is \(config.model.spec.numClasses) but the dataset has \(trainSet.classes.count) classes")
        }
        // Every rank lists the videos it could not read in the same file (lines are appended whole).
        let badVideos = BadVideoLog(file: "\(config.train.workDir)/bad_videos.txt", maxFraction: config.train.maxBadFraction, dataset: trainSet) { [weak self] in
            self?.log($0, everyRank: true)
        }
        let loader = try DataSetup.trainingLoader(config, dataset: trainSet, badVideos: badVideos, rank: parallel.rank, worldSize: parallel.size)
        let valLoader = try config.data.valAnnotations.isEmpty || config.train.evalEvery == 0 ? nil
            : DataSetup.evaluationLoader(config, dataset: DataSetup.dataset(config, split: .val), badVideos: BadVideoLog(file: nil, maxFraction: 1, action: "counting as a miss") { [weak self] in self?.log($0) },
                                         rank: parallel.rank, worldSize: parallel.size)
        if let valLoader { log("validation set: \(valLoader.dataset.summary)") }
        for clipLoader in [loader, valLoader].compactMap({ $0 }) { try DataSetup.requireClip(model, loader: clipLoader, config: config) }
        continueWithThisBatch(&state, iterationsPerEpoch: loader.batchesPerEpoch)
        let step = TrainingStep(model: model, sgd: sgd, train: config.train, iterationsPerEpoch: loader.batchesPerEpoch, parallel: parallel)
        if config.train.tensorboard, parallel.isRoot {
            // A resumed run's file starts a session after the checkpoint's step: TensorBoard drops
            // what an interrupted run logged past it, so no step shows twice.
            tensorBoard = try EventFileWriter(directory: workDirectory.file("tb"), resumingAt: state.globalIteration > 0 ? state.globalIteration + 1 : nil)
            tensorBoard?.text("```\n\(config.text)```", tag: "config", step: state.globalIteration)
        }
        let totalIterations = config.train.epochs * loader.batchesPerEpoch
        log("training \(config.model.name) for \(config.train.epochs) epochs of \(loader.batchesPerEpoch) iterations (batch \(config.train.batchSize)"
            + (parallel.isDistributed ? " on each of \(parallel.size) processes, \(config.train.batchSize * parallel.size) in all" : "")
            + ") in \(config.train.workDir)"
            + (state.globalIteration > 0 ? ", resuming at epoch \(state.epoch + 1) iteration \(state.iteration)" : ""))

        if state.validationPending {
            // The last run was stopped during this validation: do it before training on.
            if let valLoader {
                if let stopped = try finishValidation(step, valLoader, training: loader, state: &state) { return stopped }
            } else {
                state.validationPending = false
            }
        }
        var meter = Meter()
        let bar = interactive && parallel.isRoot ? ProgressDisplay(total: totalIterations, label: "training", unit: "iterations",
                                                                   completed: state.globalIteration, output: output) : nil
        while state.epoch < config.train.epochs {
            let iterator = loader.batches(epoch: state.epoch, from: state.iteration)
            defer { iterator.stop() }
            var dataStart = Date()
            while let batch = try iterator.next() {
                let dataTime = Date().timeIntervalSince(dataStart)
                let stepStart = Date()
                let outcome = try step.run(batch.clips, labels: batch.labels, globalIteration: state.globalIteration)
                state.iteration += 1
                state.globalIteration += 1
                meter.add(loss: Double(outcome.loss), correct: outcome.correct, clips: batch.count, data: dataTime, step: Date().timeIntervalSince(stepStart))
                bar?.advance()
                if state.globalIteration % config.train.logEvery == 0 || state.iteration == loader.batchesPerEpoch {
                    report(&meter, state: state, lr: outcome.lr, iterationsPerEpoch: loader.batchesPerEpoch, left: totalIterations - state.globalIteration)
                }
                if config.train.checkpointEveryIterations > 0 && state.globalIteration % config.train.checkpointEveryIterations == 0
                    && state.iteration < loader.batchesPerEpoch {
                    try checkpoint(model, sgd, state)
                }
                // Mid-epoch stops here; at an epoch's end, after its validation below.
                if state.iteration < loader.batchesPerEpoch, case let reason = stopReason(), reason != .none {
                    try checkpoint(model, sgd, state)
                    log("stopped by \(reason.describe(maxTime: options.maxTime)) at epoch \(state.epoch + 1) iteration \(state.iteration); run the same command to continue")
                    return .notFinished
                }
                dataStart = Date()
            }
            state.epoch += 1
            state.iteration = 0
            state.validationPending = valLoader != nil && (state.epoch % config.train.evalEvery == 0 || state.epoch == config.train.epochs)
            state.finished = state.epoch == config.train.epochs && !state.validationPending
            // A validated epoch's checkpoint comes before its validation: a kill then loses no training.
            let due = config.train.checkpointEvery > 0 && state.epoch % config.train.checkpointEvery == 0
            let written = due || state.epoch == config.train.epochs || state.validationPending
            if written { try checkpoint(model, sgd, state) }
            if let valLoader, state.validationPending,
               let stopped = try finishValidation(step, valLoader, training: loader, state: &state) { return stopped }
            let reason = stopReason()
            if !state.finished, reason != .none {
                if !written { try checkpoint(model, sgd, state) }
                log("stopped by \(reason.describe(maxTime: options.maxTime)) after epoch \(state.epoch); run the same command to continue")
                return .notFinished
            }
        }
        log("finished \(config.train.epochs) epochs in \(ProgressDisplay.duration(Date().timeIntervalSince(started)))"
            + (state.bestTop1.map { String(format: "; best validation top-1 %.2f%% (epoch %d), %@/best.safetensors", $0 * 100, state.bestEpoch ?? 0, config.train.workDir) } ?? "")
            + "; last checkpoint \(config.train.workDir)/\(checkpointName(globalIteration: state.globalIteration))")
        return .done
    }

    /// The state to start from, read by rank 0 and given to every rank: --resume, else the work
    /// directory's latest readable checkpoint (corrupt ones refused by name), else a fresh run
    /// from --init or [model] pretrained.
    private func restore(model: Recognizer, sgd: SGD) throws -> TrainingState {
        var state = TrainingState()
        try onRoot { state = try restoreOnRoot(model: model, sgd: sgd) }
        guard parallel.isDistributed else { return state }
        let snapshot = parallel.isRoot ? Checkpoint(model: model, sgd: sgd, state: state, config: config.text).file : SafeTensors()
        let shared = try SafeTensors(data: parallel.fromRoot(snapshot.serialized()), path: "rank 0's training state")
        guard !parallel.isRoot else { return state }
        return try Checkpoint(path: "rank 0's training state", file: shared).restore(model: model, sgd: sgd)
    }

    private func restoreOnRoot(model: Recognizer, sgd: SGD) throws -> TrainingState {
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
            log("not using --init \(initial): resuming from \(checkpoint.path) wins (--start-over sets the work directory's checkpoints aside)")
        }
        guard let checkpoint = found else {
            let initial = options.initialWeights ?? (config.model.pretrained.isEmpty ? nil : config.model.pretrained)
            if let initial {
                let report = model.load(from: try Checkpoint(path: initial).modelState())
                log("initialised \(report.loaded.count) tensors from \(initial)" + (report.isComplete ? "" : "; not loaded: \(report.summary)"))
            }
            return TrainingState()
        }
        let state = try checkpoint.restore(model: model, sgd: sgd)
        log("resuming from \(checkpoint.path)")
        return state
    }

    /// A checkpoint written with another number of clips an iteration (another batch_size or
    /// number of processes) goes on from the clips of the epoch it has seen, not from its
    /// iteration count; its global iteration, which the schedule runs on, follows.
    private func continueWithThisBatch(_ state: inout TrainingState, iterationsPerEpoch: Int) {
        let globalBatch = config.train.batchSize * parallel.size
        defer { state.globalBatch = globalBatch }
        guard let saved = state.globalBatch, saved != globalBatch else { return }
        let seen = state.iteration * saved
        state.iteration = min(seen / globalBatch, iterationsPerEpoch)
        state.globalIteration = state.epoch * iterationsPerEpoch + state.iteration
        log("the checkpoint was written at \(saved) clips an iteration and this run takes \(globalBatch): epoch \(state.epoch + 1) goes on after "
            + "\(state.iteration * globalBatch) of the \(seen) clips it had seen (iteration \(state.iteration)), global iteration \(state.globalIteration)")
    }

    /// Rank 0 writes the checkpoint; the weights and momentum are the same on every rank.
    private func checkpoint(_ model: Recognizer, _ sgd: SGD, _ state: TrainingState) throws {
        try onRoot {
            try workDirectory.write(Checkpoint(model: model, sgd: sgd, state: state, config: config.text), name: checkpointName(globalIteration: state.globalIteration))
            workDirectory.prune(keep: config.train.keepCheckpoints)
        }
    }

    /// Validates the epoch just trained, whose checkpoint is written, and rewrites that checkpoint
    /// marked validated (with the best top-1 so far). A SIGTERM or SIGINT during validation ends
    /// it at once, the checkpoint still saying the validation is to do, and returns the run's exit
    /// status (75); nil when the run goes on.
    private func finishValidation(_ step: TrainingStep, _ loader: DataLoader, training: DataLoader,
                                  state: inout TrainingState) throws -> ExitStatus? {
        do {
            try validate(step, loader, training: training, state: &state)
        } catch is Evaluator.Interrupted {
            log("stopped by \(signal()?.describe(maxTime: nil) ?? "a signal to another process") during epoch \(state.epoch)'s validation; run the same command to validate and continue")
            return .notFinished
        }
        state.validationPending = false
        state.finished = state.epoch == config.train.epochs
        try checkpoint(step.model, step.sgd, state)
        return nil
    }

    /// Recomputes the BatchNorm statistics when asked (precise BN), evaluates, logs the result and
    /// keeps the best weights. Throws Evaluator.Interrupted when a signal stops it.
    private func validate(_ step: TrainingStep, _ loader: DataLoader, training: DataLoader, state: inout TrainingState) throws {
        let model = step.model
        if config.train.preciseBNBatches > 0 {
            try preciseBatchNorm(step, training)
        }
        log("validating epoch \(state.epoch) on \(loader.dataset.entries.count) videos, \(loader.viewsPerVideo) views each")
        let progress = interactive && parallel.isRoot ? ProgressDisplay(total: loader.batchesPerEpoch, label: "validating", unit: "batches", output: output) : nil
        let scored = try Evaluator.evaluate(model, loader: loader, progress: progress, parallel: parallel) { signalled() != .none }
        var best = false
        try onRoot {
            guard let result = scored else { return }
            best = result.top1 > (state.bestTop1 ?? -1)
            log(String(format: "epoch %d validation: top-1 %.2f%% top-5 %.2f%% mean class accuracy %.2f%% (%d videos, %d failed)%@",
                       state.epoch, result.top1 * 100, result.top5 * 100, result.meanClassAccuracy * 100, result.videos, result.failed, best ? ", best so far" : ""))
            workDirectory.append(jsonLine(["mode": "val", "epoch": state.epoch, "global_iteration": state.globalIteration, "top1": result.top1,
                                           "top5": result.top5, "mean_class_accuracy": result.meanClassAccuracy, "videos": result.videos,
                                           "failed": result.failed]), to: "metrics.jsonl")
            tensorBoard?.scalars([("val/top1", result.top1), ("val/top5", result.top5), ("val/mean_class_accuracy", result.meanClassAccuracy)],
                                 step: state.globalIteration)
            let metrics = (try? String(contentsOfFile: workDirectory.file("metrics.jsonl"), encoding: .utf8)) ?? ""
            try workDirectory.write(TrainingCurves.svg(metrics: metrics), to: "curves.svg")
            guard best else { return }
            (state.bestTop1, state.bestEpoch) = (result.top1, state.epoch)
            try workDirectory.write(Checkpoint(model: model, sgd: nil, state: state, config: config.text), name: "best.safetensors", makeLast: false)
        }
    }

    /// PySlowFast's precise BN: every BatchNorm's running statistics become the average of its
    /// batch statistics over precise_bn_batches training batches (an epoch of its own draws).
    private func preciseBatchNorm(_ step: TrainingStep, _ loader: DataLoader) throws {
        let model = step.model
        let norms = ([model as Layer] + model.descendants).compactMap { $0 as? BatchNorm3d }.filter { !$0.frozen }
        let momenta = norms.map(\.momentum)
        for norm in norms {
            norm.runningMean.zero()
            norm.runningVariance.zero()
        }
        let epoch = 1_000_000 + config.train.epochs
        let iterator = loader.batches(epoch: epoch)
        defer {
            iterator.stop()
            for (norm, m) in zip(norms, momenta) { norm.momentum = m }
        }
        var count = 0
        while count < config.train.preciseBNBatches, let batch = try iterator.next() {
            for norm in norms { norm.momentum = 1 / Float(count + 1) }  // a running average
            model.head.dropout.generator = step.dropoutGenerator(at: epoch + count)
            _ = model.forward(batch.clips, training: true)
            count += 1
            if signalled() != .none { throw Evaluator.Interrupted() }
        }
        log("recomputed BatchNorm statistics over \(count) batches")
    }

    /// Why the run must stop now, if it must: a signal (on any rank), or the time budget (rank
    /// 0's clock). Every rank calls it at the same points and gets the same answer.
    private func stopReason() -> StopReason {
        stopReason(local: signal() ?? (parallel.isRoot && options.maxTime.map { Date().timeIntervalSince(started) >= $0 } == true ? .timeBudget : .none))
    }

    /// A signal received by any rank, or .none. Validation stops for signals alone: the time
    /// budget waits for its end, or a validation longer than the budget would never finish.
    private func signalled() -> StopReason { stopReason(local: signal() ?? .none) }

    private func signal() -> StopReason? {
        switch StopSignal.received.load(ordering: .relaxed) {
        case SIGTERM: .sigterm
        case SIGINT: .sigint
        default: nil
        }
    }

    private func stopReason(local: StopReason) -> StopReason {
        StopReason(rawValue: parallel.maximum(local.rawValue)) ?? .none
    }

    /// Runs `body` on rank 0 alone and makes its failure every rank's: the others throw the same
    /// status, silently (rank 0 reports it).
    private func onRoot(_ body: () throws -> Void) throws {
        var failure = ""
        if parallel.isRoot {
            do { try body() } catch {
                guard parallel.isDistributed else { throw error }
                let (status, message) = exitStatus(for: error)
                failure = "\(status.rawValue) \(message)"
            }
        }
        let shared = String(decoding: parallel.fromRoot(Data(failure.utf8)), as: UTF8.self)
        guard let space = shared.firstIndex(of: " "), let code = Int32(shared[..<space]), let status = ExitStatus(rawValue: code) else { return }
        throw SharedFailure(status: status, message: String(shared[shared.index(after: space)...]))
    }

    private struct Meter {
        var loss = 0.0, correct = 0, clips = 0, data = 0.0, step = 0.0, iterations = 0
        var totalStep = 0.0, totalIterations = 0

        mutating func add(loss: Double, correct: Int, clips: Int, data: Double, step: Double) {
            self.loss += loss; self.correct += correct; self.clips += clips; self.data += data; self.step += step
            iterations += 1
            totalStep += step + data; totalIterations += 1
        }
    }

    /// A log line over the last iterations: loss and top-1 over every rank's clips, times and
    /// memory of rank 0, which writes it.
    private func report(_ meter: inout Meter, state: TrainingState, lr: Double, iterationsPerEpoch: Int, left: Int) {
        let n = Double(max(meter.iterations, 1))
        let global = parallel.sum([meter.loss, Double(meter.correct), Double(meter.clips)])
        let (loss, top1) = (global[0] / n / Double(parallel.size), global[1] / max(global[2], 1))
        let clipsPerSecond = global[2] / max(meter.data + meter.step, 1e-9)
        defer { (meter.loss, meter.correct, meter.clips, meter.data, meter.step, meter.iterations) = (0, 0, 0, 0, 0, 0) }
        guard parallel.isRoot else { return }
        let perIteration = meter.totalStep / Double(max(meter.totalIterations, 1))
        let rss = ProcessMemory.residentMiB
        log(String(format: "epoch %d/%d iter %d/%d lr %.6g loss %.4f top1 %.1f%% data %.3fs step %.3fs %.2f clips/s eta %@ rss %.0fMiB",
                   state.epoch + 1, config.train.epochs, state.iteration, iterationsPerEpoch, lr, loss, top1 * 100, meter.data / n,
                   meter.step / n, clipsPerSecond, ProgressDisplay.duration(perIteration * Double(left)), rss))
        workDirectory.append(jsonLine(["mode": "train", "epoch": state.epoch + 1, "iteration": state.iteration, "global_iteration": state.globalIteration,
                                       "lr": lr, "loss": loss, "top1": top1, "data_time": meter.data / n, "step_time": meter.step / n,
                                       "clips_per_s": clipsPerSecond, "eta_s": perIteration * Double(left), "rss_mib": rss]), to: "metrics.jsonl")
        tensorBoard?.scalars([("train/loss", loss), ("train/lr", lr), ("train/top1", top1), ("train/data_time", meter.data / n),
                              ("train/step_time", meter.step / n), ("train/clips_per_s", clipsPerSecond)], step: state.globalIteration)
    }

    /// A line to the output (clearing a progress bar on a terminal) and to train.log, by rank 0;
    /// other ranks' lines that only they can tell (their bad videos) go to standard error.
    func log(_ line: String, everyRank: Bool = false) {
        guard parallel.isRoot else {
            if everyRank { FileHandle.standardError.write(Data("nltrain rank \(parallel.rank): \(line)\n".utf8)) }
            return
        }
        let stamped = "\(timestamp()) \(line)"
        logLock.withLock {
            output.write(Data(((interactive ? "\r\u{1B}[K" : "") + stamped + "\n").utf8))
            workDirectory?.append(stamped, to: "train.log")
        }
    }
}
