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

    static var name: String? {
        switch received.load(ordering: .relaxed) {
        case 0: nil
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case let s: "signal \(s)"
        }
    }
}

/// `nltrain`: trains the config's model on its dataset, resumably. `log` may be called from the
/// loader's threads (bad videos), hence the lock.
public final class Trainer: @unchecked Sendable {
    public struct Options {
        /// A checkpoint to resume from instead of the work directory's latest.
        public var resume: String?
        /// Weights to start from (model only), instead of [model] pretrained.
        public var initialWeights: String?
        /// Stop, after a checkpoint, at the first iteration boundary past this many seconds.
        public var maxTime: TimeInterval?
        public init() {}
    }

    public let config: Config
    public let options: Options
    private let output: FileHandle
    private let interactive: Bool
    private var workDirectory: WorkDirectory!
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
        workDirectory = try WorkDirectory(config.train.workDir)
        try workDirectory.lock()
        try workDirectory.write(config.text, to: "config.cfg")

        let model = Recognizer(spec: config.model.spec, seed: UInt64(config.train.seed))
        let sgd = SGD(parameters: model.parameters.filter { $0.parameter.requiresGradient }, momentum: config.train.momentum,
                      nesterov: config.train.nesterov, weightDecay: config.train.weightDecay, decayNormAndBias: config.train.decayNormAndBias)
        var state = try restore(model: model, sgd: sgd)
        if state.finished {
            log("\(workDirectory.path) has finished all \(config.train.epochs) epochs" + (state.bestTop1.map { String(format: "; best validation top-1 %.2f%%", $0 * 100) } ?? "") + "; nothing to do")
            return .done
        }

        let trainSet = try DataSetup.dataset(config, split: .train)
        log("training set: \(trainSet.summary)")
        for problem in trainSet.problems.prefix(10) { log("  \(problem)") }
        guard trainSet.classes.count <= config.model.spec.numClasses else {
            throw ConfigError(source: config.sources["model.num_classes"] ?? ConfigSource(file: "config", line: 0),
                              message: "model.num_classes is \(config.model.spec.numClasses) but the dataset has \(trainSet.classes.count) classes")
        }
        let badVideos = BadVideoLog(file: workDirectory.file("bad_videos.txt"), maxFraction: config.train.maxBadFraction) { [weak self] in self?.log($0) }
        let loader = DataSetup.trainingLoader(config, dataset: trainSet, badVideos: badVideos)
        guard loader.batchesPerEpoch > 0 else {
            throw DataError("the training set has \(trainSet.entries.count) videos, fewer than one batch of \(config.train.batchSize)")
        }
        let valLoader = try config.data.valAnnotations.isEmpty || config.train.evalEvery == 0 ? nil
            : DataSetup.evaluationLoader(config, dataset: DataSetup.dataset(config, split: .val), badVideos: BadVideoLog(file: nil, maxFraction: 1) { _ in })
        if let valLoader { log("validation set: \(valLoader.dataset.summary)") }
        let schedule = LearningRateSchedule(config.train, iterationsPerEpoch: loader.batchesPerEpoch)
        let totalIterations = config.train.epochs * loader.batchesPerEpoch
        log("training \(config.model.name) for \(config.train.epochs) epochs of \(loader.batchesPerEpoch) iterations (batch \(config.train.batchSize)) in \(workDirectory.path)"
            + (state.globalIteration > 0 ? ", resuming at epoch \(state.epoch + 1) iteration \(state.iteration)" : ""))

        var meter = Meter()
        let bar = interactive ? ProgressDisplay(total: totalIterations, label: "training", unit: "iterations",
                                                completed: state.globalIteration, output: output) : nil
        while state.epoch < config.train.epochs {
            let iterator = loader.batches(epoch: state.epoch, from: state.iteration)
            defer { iterator.stop() }
            var dataStart = Date()
            while let batch = try iterator.next() {
                let dataTime = Date().timeIntervalSince(dataStart)
                let stepStart = Date()
                let lr = schedule.rate(at: state.globalIteration)
                model.zeroGradients()
                let logits = model.forward(batch.clips, training: true)
                let (loss, gradient) = SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: batch.labels)
                guard loss.isFinite else {
                    throw CommandError(.internalError, "the loss became \(loss) at iteration \(state.globalIteration + 1); lower train.lr or set train.grad_clip, and resume from the last checkpoint in \(workDirectory.path)")
                }
                let correct = (0..<batch.count).filter { k in argmax(logits, row: k) == batch.labels[k] }.count
                _ = model.backward(gradient)
                if config.train.gradClip > 0 { sgd.clipGradients(maxNorm: config.train.gradClip) }
                sgd.step(lr: lr)
                state.iteration += 1
                state.globalIteration += 1
                meter.add(loss: Double(loss), correct: correct, clips: batch.count, data: dataTime, step: Date().timeIntervalSince(stepStart))
                bar?.advance()
                if state.globalIteration % config.train.logEvery == 0 || state.iteration == loader.batchesPerEpoch {
                    report(&meter, state: state, lr: lr, iterationsPerEpoch: loader.batchesPerEpoch, left: totalIterations - state.globalIteration)
                }
                if config.train.checkpointEveryIterations > 0 && state.globalIteration % config.train.checkpointEveryIterations == 0
                    && state.iteration < loader.batchesPerEpoch {
                    try checkpoint(model, sgd, &state)
                }
                // Mid-epoch stops here; at an epoch's end, after its validation below.
                if state.iteration < loader.batchesPerEpoch, let reason = stopReason() {
                    try checkpoint(model, sgd, &state)
                    log("stopped by \(reason) at epoch \(state.epoch + 1) iteration \(state.iteration); run the same command to continue")
                    return .notFinished
                }
                dataStart = Date()
            }
            state.epoch += 1
            state.iteration = 0
            if let valLoader, state.epoch % config.train.evalEvery == 0 || state.epoch == config.train.epochs {
                try validate(model, valLoader, training: loader, state: &state)
            }
            let due = config.train.checkpointEvery > 0 && state.epoch % config.train.checkpointEvery == 0
            if due || state.epoch == config.train.epochs || stopReason() != nil {
                state.finished = state.epoch == config.train.epochs
                try checkpoint(model, sgd, &state)
            }
            if !state.finished, let reason = stopReason() {
                log("stopped by \(reason) after epoch \(state.epoch); run the same command to continue")
                return .notFinished
            }
        }
        log("finished \(config.train.epochs) epochs in \(ProgressDisplay.duration(Date().timeIntervalSince(started)))"
            + (state.bestTop1.map { String(format: "; best validation top-1 %.2f%% (epoch %d), %@/best.safetensors", $0 * 100, state.bestEpoch ?? 0, workDirectory.path) } ?? "")
            + "; last checkpoint \(workDirectory.path)/\(checkpointName(globalIteration: state.globalIteration))")
        return .done
    }

    /// The state to start from: --resume, else the work directory's latest readable checkpoint
    /// (corrupt ones refused by name), else a fresh run from --init or [model] pretrained.
    private func restore(model: Recognizer, sgd: SGD) throws -> TrainingState {
        var found: (Checkpoint, TrainingState)?
        if let path = options.resume {
            let checkpoint = try Checkpoint(path: path)
            found = (checkpoint, try TrainingState(metadata: checkpoint.file.metadata, path: path))
        } else {
            found = workDirectory.latestCheckpoint(refused: { [weak self] in self?.log($0) })
        }
        guard let (checkpoint, state) = found else {
            let initial = options.initialWeights ?? (config.model.pretrained.isEmpty ? nil : config.model.pretrained)
            if let initial {
                let report = model.load(from: try Checkpoint(path: initial).modelState)
                log("initialised \(report.loaded.count) tensors from \(initial)" + (report.isComplete ? "" : "; not loaded: \(report.summary)"))
            }
            var fresh = TrainingState()
            fresh.dropoutGenerator = model.head.dropout.generator.words
            return fresh
        }
        try checkpoint.load(into: model)
        try sgd.load(from: checkpoint.file, path: checkpoint.path)
        if state.dropoutGenerator.count == 4 { model.head.dropout.generator = SeededGenerator(words: state.dropoutGenerator) }
        log("resuming from \(checkpoint.path)")
        return state
    }

    private func checkpoint(_ model: Recognizer, _ sgd: SGD, _ state: inout TrainingState) throws {
        state.dropoutGenerator = model.head.dropout.generator.words
        var file = SafeTensors()
        model.save(into: &file)
        sgd.save(into: &file)
        file.metadata = state.metadata(config: config.text)
        let name = checkpointName(globalIteration: state.globalIteration)
        try workDirectory.writeCheckpoint(file, name: name)
        workDirectory.prune(keep: config.train.keepCheckpoints)
    }

    private func validate(_ model: Recognizer, _ loader: DataLoader, training: DataLoader, state: inout TrainingState) throws {
        if config.train.preciseBNBatches > 0 {
            try preciseBatchNorm(model, training)
        }
        let progress = interactive ? ProgressDisplay(total: loader.batchesPerEpoch, label: "validating", unit: "batches", output: output) : nil
        let result = try Evaluator.evaluate(model, loader: loader, progress: progress)
        let isBest = result.top1 > (state.bestTop1 ?? -1)
        log(String(format: "epoch %d validation: top-1 %.2f%% top-5 %.2f%% mean class accuracy %.2f%% (%d videos, %d failed)%@",
                   state.epoch, result.top1 * 100, result.top5 * 100, result.meanClassAccuracy * 100, result.videos, result.failed, isBest ? ", best so far" : ""))
        workDirectory.append(jsonLine(["mode": "val", "epoch": state.epoch, "top1": result.top1, "top5": result.top5,
                                       "mean_class_accuracy": result.meanClassAccuracy, "videos": result.videos, "failed": result.failed]), to: "metrics.jsonl")
        if isBest {
            (state.bestTop1, state.bestEpoch) = (result.top1, state.epoch)
            var file = SafeTensors()
            model.save(into: &file)
            file.metadata = state.metadata(config: config.text)
            try workDirectory.writeCheckpoint(file, name: "best.safetensors", makeLast: false)
        }
    }

    /// PySlowFast's precise BN: every BatchNorm's running statistics become the average of its
    /// batch statistics over precise_bn_batches training batches (an epoch of its own draws).
    private func preciseBatchNorm(_ model: Recognizer, _ loader: DataLoader) throws {
        let norms = ([model as Layer] + model.descendants).compactMap { $0 as? BatchNorm3d }.filter { !$0.frozen }
        let momenta = norms.map(\.momentum)
        for norm in norms {
            norm.runningMean.zero()
            norm.runningVariance.zero()
        }
        let iterator = loader.batches(epoch: 1_000_000 + config.train.epochs)
        defer {
            iterator.stop()
            for (norm, m) in zip(norms, momenta) { norm.momentum = m }
        }
        var count = 0
        while count < config.train.preciseBNBatches, let batch = try iterator.next() {
            for norm in norms { norm.momentum = 1 / Float(count + 1) }  // a running average
            _ = model.forward(batch.clips, training: true)
            count += 1
        }
        log("recomputed BatchNorm statistics over \(count) batches")
    }

    /// Why the run must stop now, if it must: a signal, or the time budget.
    private func stopReason() -> String? {
        if let name = StopSignal.name { return name }
        if let maxTime = options.maxTime, Date().timeIntervalSince(started) >= maxTime {
            return "the time budget (--max-time \(ProgressDisplay.duration(maxTime)))"
        }
        return nil
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

    private func report(_ meter: inout Meter, state: TrainingState, lr: Double, iterationsPerEpoch: Int, left: Int) {
        let n = Double(max(meter.iterations, 1))
        let perIteration = meter.totalStep / Double(max(meter.totalIterations, 1))
        let rss = residentMiB()
        log(String(format: "epoch %d/%d iter %d/%d lr %.6g loss %.4f top1 %.1f%% data %.3fs step %.3fs %.2f clips/s eta %@ rss %.0fMiB",
                   state.epoch + 1, config.train.epochs, state.iteration, iterationsPerEpoch, lr, meter.loss / n,
                   Double(meter.correct) * 100 / Double(max(meter.clips, 1)), meter.data / n, meter.step / n,
                   Double(meter.clips) / max(meter.data + meter.step, 1e-9), ProgressDisplay.duration(perIteration * Double(left)), rss))
        workDirectory.append(jsonLine(["mode": "train", "epoch": state.epoch + 1, "iteration": state.iteration, "global_iteration": state.globalIteration,
                                       "lr": lr, "loss": meter.loss / n, "top1": Double(meter.correct) / Double(max(meter.clips, 1)),
                                       "data_time": meter.data / n, "step_time": meter.step / n,
                                       "clips_per_s": Double(meter.clips) / max(meter.data + meter.step, 1e-9),
                                       "eta_s": perIteration * Double(left), "rss_mib": rss]), to: "metrics.jsonl")
        (meter.loss, meter.correct, meter.clips, meter.data, meter.step, meter.iterations) = (0, 0, 0, 0, 0, 0)
    }

    /// A line to the output (clearing a progress bar on a terminal) and to train.log.
    func log(_ line: String) {
        let stamped = "\(timestamp()) \(line)"
        logLock.withLock {
            output.write(Data(((interactive ? "\r\u{1B}[K" : "") + stamped + "\n").utf8))
            workDirectory?.append(stamped, to: "train.log")
        }
    }
}

func argmax(_ logits: Tensor, row: Int) -> Int {
    let c = logits.channels
    var best = 0
    for j in 1..<c where logits[row * c + j] > logits[row * c + best] { best = j }
    return best
}

/// One line of JSON with the keys sorted.
func jsonLine(_ values: [String: Any]) -> String {
    let data = try! JSONSerialization.data(withJSONObject: values, options: [.sortedKeys, .withoutEscapingSlashes])
    return String(decoding: data, as: UTF8.self)
}

func timestamp() -> String {
    let formatter = DateFormatter()
    formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
    return formatter.string(from: Date())
}

/// The process's resident set size now, in MiB.
public func residentMiB() -> Double {
    guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
          let pages = statm.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) else { return 0 }
    return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
}
