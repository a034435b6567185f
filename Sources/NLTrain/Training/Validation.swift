import Foundation
import NLData
import NLModels
import NLDistributed
import NLLayers
import NLTensor
import NLVideo

extension Trainer {
    /// Validates the epoch just trained, whose checkpoint is written, and rewrites that checkpoint
    /// marked validated (with the best top-1 so far). A SIGTERM or SIGINT during validation ends
    /// it at once, the checkpoint still saying the validation is to do, and returns the run's exit
    /// status (75); nil when the run goes on.
    func finishValidation(
        _ step: TrainingStep, _ loader: DataLoader?, training: DataLoader,
        state: inout TrainingState
    ) throws -> ExitStatus? {
        guard let loader else {  // this run's config does not validate
            state.validationPending = false
            return nil
        }
        do {
            try validate(step, loader, training: training, state: &state)
        } catch is Evaluator.Interrupted, is BatchIterator.Stopped {
            log(
                "stopped by \(receivedSignal()?.describe(maxTime: nil) ?? "a signal to another process") during epoch \(state.epoch)'s validation; run the same command to validate and continue"
            )
            return .notFinished
        }
        state.validationPending = false
        state.finished = state.epoch == config.train.epochs
        try checkpoint(step, state)
        return nil
    }

    /// Recomputes the BatchNorm statistics when asked (precise BN), evaluates, logs the result and
    /// keeps the best weights. Throws Evaluator.Interrupted when a signal stops it.
    func validate(_ step: TrainingStep, _ loader: DataLoader, training: DataLoader, state: inout TrainingState) throws {
        let model = step.model
        if config.train.preciseBNBatches > 0 {
            try preciseBatchNorm(step, training)
        }
        log(
            "validating epoch \(state.epoch) on \(loader.dataset.entries.count) videos, \(loader.viewsPerVideo) views each"
        )
        let progress =
            log.interactive && parallel.isRoot
            ? ProgressDisplay(total: loader.batchesPerEpoch, label: "validating", unit: "batches", output: log.output)
            : nil
        let scored = try Evaluator.evaluate(
            model, loader: loader, progress: progress, parallel: parallel, stopWhileWaiting: stopWhileWaiting
        ) { signalled() != .none }
        var best = false
        try onRoot {
            guard let result = scored else { return }
            best = result.top1 > (state.bestTop1 ?? -1)
            log(
                String(
                    format:
                        "epoch %d validation: top-1 %.2f%% top-5 %.2f%% mean class accuracy %.2f%% loss %.4f (%d videos, %d failed)%@",
                    state.epoch, result.top1 * 100, result.top5 * 100, result.meanClassAccuracy * 100, result.loss,
                    result.videos, result.failed, best ? ", best so far" : ""))
            log.record([
                "mode": "val", "epoch": state.epoch, "global_iteration": state.globalIteration, "top1": result.top1,
                "top5": result.top5, "mean_class_accuracy": result.meanClassAccuracy, "loss": result.loss,
                "videos": result.videos,
                "failed": result.failed,
            ])
            log.tensorBoard?.scalars(
                [
                    ("val/top1", result.top1 * 100), ("val/top5", result.top5 * 100),
                    ("val/mean_class_accuracy", result.meanClassAccuracy * 100), ("val/loss", result.loss),
                ],
                step: state.globalIteration)
            if let tensorBoard = log.tensorBoard {
                let report = EvaluationReport(result, title: "epoch \(state.epoch)")
                let picture = report.picture
                if let png = try? PNG.encode(rgb: picture.pixels[...], width: picture.width, height: picture.height) {
                    tensorBoard.image(
                        png: png, width: picture.width, height: picture.height, tag: "val/confusion_matrix",
                        step: state.globalIteration)
                }
                tensorBoard.text(report.markdown, tag: "val/per_class", step: state.globalIteration)
            }
            let metrics = (try? String(contentsOfFile: workDirectory.file("metrics.jsonl"), encoding: .utf8)) ?? ""
            try workDirectory.write(TrainingCurves.svg(metrics: metrics), to: "curves.svg")
            guard best else { return }
            (state.bestTop1, state.bestEpoch) = (result.top1, state.epoch)
            try workDirectory.write(
                Checkpoint(model: model, optimizer: nil, state: state, config: config.text, classes: classes),
                name: "best.safetensors",
                makeLast: false)
        }
    }

    /// PySlowFast's precise BN: every BatchNorm's running statistics become the average of its
    /// batch statistics over precise_bn_batches training batches (an epoch of its own draws).
    func preciseBatchNorm(_ step: TrainingStep, _ loader: DataLoader) throws {
        let model = step.model
        let norms = ([model as Layer] + model.descendants).compactMap { $0 as? BatchNorm3d }.filter { !$0.frozen }
        let momenta = norms.map(\.momentum)
        for norm in norms {
            norm.runningMean.zero()
            norm.runningVariance.zero()
        }
        let epoch = 1_000_000 + config.train.epochs
        let iterator = loader.batches(epoch: epoch)
        iterator.shouldStop = stopWhileWaiting
        defer {
            iterator.stop()
            for (norm, m) in zip(norms, momenta) { norm.momentum = m }
        }
        var count = 0, averaged = 0
        while count < config.train.preciseBNBatches, let batch = try iterator.next() {
            // micro-batches, as training feeds BatchNorm; no backward follows
            for (index, part) in step.microBatches(batch.clips, labels: batch.labels).enumerated() {
                for norm in norms { norm.momentum = 1 / Float(averaged + 1) }  // a running average
                model.head.dropout.generator = step.randomness(at: epoch + count, microBatch: index)
                _ = Inference.run { model.forward(part.clips, training: true) }
                averaged += 1
            }
            count += 1
            if signalled() != .none { throw Evaluator.Interrupted() }
        }
        log("recomputed BatchNorm statistics over \(count) batches")
    }
}
