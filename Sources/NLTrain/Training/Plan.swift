import Foundation
import NLData
import NLLayers
import NLModels
import NLTensor

/// What a run of a config will take on this machine (nltrain --plan), measured by running a few
/// of its steps, not guessed: the peak memory of a step, the time of a step, an iteration (with
/// its data), an epoch, a validation and the whole run, and the largest batch_size that fits in
/// the memory there is.
public struct Plan: Encodable, Sendable {
    public var videos = 0, iterationsPerEpoch = 0, batchSize = 0, accumulate = 1
    public var validationVideos = 0, validations = 0
    public var peakRSSBytes = 0
    /// The memory a clip more in a micro-batch takes (two step sizes measured).
    public var bytesPerClip = 0
    public var memoryAvailableBytes = 0
    public var maxBatchSize = 0
    public var stepSeconds = 0.0, iterationSeconds = 0.0, epochSeconds = 0.0
    public var validationSeconds = 0.0, checkpointSeconds = 0.0, checkpoints = 0, runSeconds = 0.0

    enum CodingKeys: String, CodingKey {
        case videos, iterationsPerEpoch = "iterations_per_epoch", batchSize = "batch_size", accumulate
        case validationVideos = "validation_videos", validations, peakRSSBytes = "peak_rss_bytes"
        case bytesPerClip = "bytes_per_clip", memoryAvailableBytes = "memory_available_bytes"
        case maxBatchSize = "max_batch_size", stepSeconds = "step_seconds", iterationSeconds = "iteration_seconds"
        case epochSeconds = "epoch_seconds", validationSeconds = "validation_seconds", runSeconds = "run_seconds"
        case checkpointSeconds = "checkpoint_seconds", checkpoints
    }

    /// The share of the available memory a plan fills at most: the rest for the system's
    /// page cache and the loader's decoding.
    static let memoryShare = 0.9

    /// The plan as lines for a person.
    public var description: String {
        func mib(_ bytes: Int) -> String {
            bytes >= 10 << 30 ? String(format: "%.1f GiB", Double(bytes) / Double(1 << 30)) : "\(bytes >> 20) MiB"
        }
        let clips = batchSize * accumulate
        let recipe =
            maxBatchSize >= batchSize
            ? "batch_size \(batchSize) fits"
            : "batch_size \(batchSize) does not fit: batch_size \(maxBatchSize) x accumulate "
                + "\((clips + max(maxBatchSize, 1) - 1) / max(maxBatchSize, 1)) keeps about \(clips) clips a step"
        return """
            data: \(videos) training videos, \(iterationsPerEpoch) iterations of \(clips) clips an epoch\(validationVideos > 0 ? "; \(validationVideos) validation videos" : "")
            a step: \(String(format: "%.3g", stepSeconds)) s (an iteration with its data: \(String(format: "%.3g", iterationSeconds)) s), peak memory \(mib(peakRSSBytes))
            an epoch: \(ProgressDisplay.duration(epochSeconds))\(validations > 0 ? ", a validation: \(ProgressDisplay.duration(validationSeconds))" : ""), a checkpoint: \(String(format: "%.2g", checkpointSeconds)) s; the run (\(validations) validations, \(checkpoints) checkpoints): \(ProgressDisplay.duration(runSeconds))
            memory: \(mib(memoryAvailableBytes)) available, \(mib(bytesPerClip)) a clip; the largest batch_size that fits in \(Int(Plan.memoryShare * 100))% of it: \(maxBatchSize) (\(recipe))
            """
    }
}

/// A plan stopped by a signal before it was measured. Exit 75: nothing was written, run it again.
public struct PlanStopped: Error, CustomStringConvertible {
    let reason: String
    /// When it stopped and what that means for the user.
    var when = "before the plan was measured; nothing was written"
    public var description: String { "stopped by \(reason) \(when)" }
}

extension Trainer {
    /// Measures the plan of this config: two steps of random clips at two micro-batch sizes (the
    /// memory a clip takes), then training iterations on the real data at the config's batch (the
    /// peak, the step and the iteration with its data), and validation batches. Writes nothing.
    public func plan() throws -> Plan {
        // A stop is honoured between steps and while a batch is awaited, as in training.
        func next(_ iterator: BatchIterator) throws -> Batch? {
            do { return try iterator.next() } catch is BatchIterator.Stopped {
                throw PlanStopped(reason: receivedSignal()?.describe(maxTime: nil) ?? "a signal")
            }
        }
        let model = try config.makeModel(seed: UInt64(config.train.seed))
        let (training, validation) = try loaders(for: model, recordingBadVideos: false)
        try chooseConvolutions(model, clipShape: DataSetup.forwardShape(training, config: config))
        let step = TrainingStep(
            model: model, optimizer: Optimizer(model: model, config.train), train: config.train,
            iterationsPerEpoch: training.batchesPerEpoch, parallel: parallel)
        var plan = Plan()
        (plan.videos, plan.iterationsPerEpoch) = (training.dataset.entries.count, training.batchesPerEpoch)
        (plan.batchSize, plan.accumulate) = (config.train.batchSize, config.train.accumulate)

        let memory = try stepMemory(
            model: model, optimizer: step.optimizer, clipShape: training.clipShape,
            iterationsPerEpoch: training.batchesPerEpoch)
        plan.bytesPerClip = memory.perClip

        // The real iterations: the first (decoding starts, buffers come) not timed.
        Tensor.releasePooledBuffers()
        ProcessMemory.resetPeak()
        let iterator = training.batches(epoch: 0)
        iterator.shouldStop = stopWhileWaiting
        defer { iterator.stop() }
        let measured = min(4, training.batchesPerEpoch)
        var steps: [Double] = [], iterations: [Double] = []
        var started = Date()
        for i in 0..<measured {
            guard let batch = try next(iterator) else { break }
            let stepStart = Date()
            _ = try? step.run(batch.clips, labels: batch.labels, globalIteration: i)  // diverging or not, as long
            if i > 0 || measured == 1 {
                steps.append(Date().timeIntervalSince(stepStart))
                iterations.append(Date().timeIntervalSince(started))
            }
            started = Date()
            try checkStop()
        }
        plan.peakRSSBytes = ProcessMemory.peakBytes
        plan.stepSeconds = steps.sorted()[steps.count / 2]
        plan.iterationSeconds = iterations.sorted()[iterations.count / 2]
        plan.epochSeconds = plan.iterationSeconds * Double(training.batchesPerEpoch)

        if let validation, config.train.evalEvery > 0 {
            plan.validationVideos = validation.dataset.entries.count
            let batches = validation.batches(epoch: 0)
            batches.shouldStop = stopWhileWaiting
            defer { batches.stop() }
            var times: [Double] = []
            for _ in 0..<min(3, validation.batchesPerEpoch) {
                let start = Date()
                guard let batch = try next(batches) else { break }
                _ = Inference.run { model.forward(batch.clips, training: false) }
                times.append(Date().timeIntervalSince(start))
                try checkStop()
            }
            let perBatch = times.count > 1 ? times.dropFirst().reduce(0, +) / Double(times.count - 1) : times[0]
            plan.validationSeconds = perBatch * Double(validation.batchesPerEpoch)
            plan.validations =
                (1...config.train.epochs).filter {
                    $0 % config.train.evalEvery == 0 || $0 == config.train.epochs
                }.count
        }
        // A checkpoint, written where the system keeps temporary files and removed: its time, and
        // its memory (the file is put together whole) in the peak.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("nl-plan-\(getpid()).safetensors")
            .path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let writeStart = Date()
        try Checkpoint(
            model: model, optimizer: step.optimizer, state: TrainingState(), config: config.text, classes: classes
        )
        .write(to: scratch)
        plan.checkpointSeconds = Date().timeIntervalSince(writeStart)
        let t = config.train
        // Each epoch's checkpoint when due (and the last, and each validated one), rewritten after
        // its validation, and best.safetensors at most once a validation.
        plan.checkpoints =
            (1...t.epochs).filter { $0 % max(t.checkpointEvery, 1) == 0 && t.checkpointEvery > 0 || $0 == t.epochs }
            .count
            + 2 * plan.validations
            + (t.checkpointEveryIterations > 0 ? t.epochs * training.batchesPerEpoch / t.checkpointEveryIterations : 0)
        // the peak with validation's batches and a checkpoint
        plan.peakRSSBytes = max(plan.peakRSSBytes, ProcessMemory.peakBytes)
        plan.runSeconds =
            Double(t.epochs) * plan.epochSeconds + Double(plan.validations) * plan.validationSeconds
            + Double(plan.checkpoints) * plan.checkpointSeconds
        plan.memoryAvailableBytes = Self.memoryForThisProcess
        plan.maxBatchSize = Self.largestBatch(
            fixedBytes: plan.peakRSSBytes - plan.bytesPerClip * config.train.batchSize, perClip: plan.bytesPerClip)
        return plan
    }

    /// A step's memory: what a clip more in a micro-batch takes, and what it takes besides its clips.
    struct StepMemory {
        var perClip: Int, fixed: Int
    }

    /// Measures a step's memory on `model`, whose weights it changes: the peaks of a step of 2
    /// clips and of 4 random clips of `clipShape`, each after a warm-up step of its size (the
    /// optimizer's state and the pooled buffers), from a reset high-water mark.
    func stepMemory(
        model: Recognizer, optimizer: Optimizer, clipShape: [Int], iterationsPerEpoch: Int
    ) throws -> StepMemory {
        var train = config.train
        (train.accumulate, train.batchSize) = (1, 4)
        let probe = TrainingStep(
            model: model, optimizer: optimizer, train: train, iterationsPerEpoch: iterationsPerEpoch,
            parallel: parallel)
        func peak(clips n: Int) -> Int {
            var generator = SeededGenerator(seed: 7)
            let shape = [n] + clipShape
            let clips = Tensor(
                shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float.random(in: -2...2, using: &generator) })
            let labels = (0..<n).map { $0 % config.model.spec.numClasses }
            _ = try? probe.run(clips, labels: labels, globalIteration: 0)
            Tensor.releasePooledBuffers()
            ProcessMemory.resetPeak()
            _ = try? probe.run(clips, labels: labels, globalIteration: 0)
            return ProcessMemory.peakBytes
        }
        let small = peak(clips: 2)
        try checkStop()
        let large = peak(clips: 4)
        try checkStop()
        let perClip = max(1, (large - small) / 2)
        return StepMemory(perClip: perClip, fixed: large - 4 * perClip)
    }

    /// Throws PlanStopped (75, nothing written) when a signal asked the process to stop.
    func checkStop() throws {
        if case let reason = signalled(), reason != .none {
            throw PlanStopped(reason: reason.describe(maxTime: nil))
        }
    }

    /// The memory this process may fill: what the system has available and what the process
    /// holds, shared with the other processes of an mpirun job on this machine.
    static var memoryForThisProcess: Int {
        let local = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? 1
        return (ProcessMemory.availableBytes + ProcessMemory.residentBytes) / max(local, 1)
    }

    /// The largest batch_size whose step fits in Plan.memoryShare of the memory there is.
    static func largestBatch(fixedBytes: Int, perClip: Int) -> Int {
        let budget = Double(memoryForThisProcess) * Plan.memoryShare
        return max(0, min(4096, Int((budget - Double(fixedBytes)) / Double(max(perClip, 1)))))
    }

    /// batch_size = auto, for a run from the start (a resumed one has its checkpoint's): the
    /// largest batch that fits (largestBatch), measured by steps of random clips on a model of its
    /// own (so its weights, and the memory of a second model counted against the batch, err on the
    /// side of fitting), at most 64 and at most what the training set gives each process. Rank 0
    /// measures; every rank takes its answer.
    func resolveAutoBatchSize(clipShape: [Int], videos: Int) throws {
        guard batchSizeIsAuto else { return }
        var chosen = config.train.batchSize  // rank 0's: a resumed run's, or auto
        try onRoot {
            guard chosen == TrainSection.autoBatchSize else { return }
            let model = try config.makeModel(seed: UInt64(config.train.seed))
            var measured: StepMemory
            do {
                measured = try stepMemory(
                    model: model, optimizer: Optimizer(model: model, config.train), clipShape: clipShape,
                    iterationsPerEpoch: 1)
            } catch let stop as PlanStopped {  // in a run, not a plan
                throw PlanStopped(
                    reason: stop.reason,
                    when: "while measuring batch_size auto, before training; run the same command to continue")
            }
            Tensor.releasePooledBuffers()
            measured.fixed = max(measured.fixed, 0)
            let fits = Self.largestBatch(fixedBytes: measured.fixed, perClip: measured.perClip)
            let share = max(1, videos / (config.train.accumulate * parallel.size))
            chosen = max(1, min(Self.autoBatchCap, fits, share))
            log(
                "batch_size auto: \(chosen) (\(measured.perClip >> 20) MiB a clip, \(measured.fixed >> 20) MiB besides; "
                    + "\(fits) fit\(fits == 1 ? "s" : "") in \(Int(Plan.memoryShare * 100))% of "
                    + "\(Self.memoryForThisProcess >> 20) MiB; at most \(Self.autoBatchCap) and \(share) for \(videos) videos)"
            )
            if fits < 1 {
                log("warning: not even one clip fits in the memory available; batch_size 1 may swap or be killed")
            }
        }
        config.train.batchSize = parallel.maximum(chosen)  // rank 0's: the others hold 0 (auto)
    }

    /// The largest batch_size auto chooses: the published NL I3D recipes' global batch.
    static let autoBatchCap = 64
}
