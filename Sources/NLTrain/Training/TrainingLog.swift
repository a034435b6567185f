import Foundation
import NLData
import NLDistributed
import NLLayers
import NLTensor
import NLVideo

extension Trainer {
    /// Sums over the iterations since the last log line, and over the run for its time left.
    struct Meter {
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
    func report(state: TrainingState, lr: Double, iterationsPerEpoch: Int, left: Int) {
        let n = Double(max(meter.iterations, 1))
        let global = parallel.sum([meter.loss, Double(meter.correct), Double(meter.clips)])
        let (loss, top1) = (global[0] / n / Double(parallel.size), global[1] / max(global[2], 1))
        let clipsPerSecond = global[2] / max(meter.data + meter.step, 1e-9)
        defer {
            (meter.loss, meter.correct, meter.clips, meter.data, meter.step, meter.iterations) = (0, 0, 0, 0, 0, 0)
        }
        guard parallel.isRoot else { return }
        let perIteration = meter.totalStep / Double(max(meter.totalIterations, 1))
        let rss = ProcessMemory.residentMiB
        log(
            String(
                format:
                    "epoch %d/%d iter %d/%d lr %.6g loss %.4f top1 %.1f%% data %.3fs step %.3fs %.2f clips/s eta %@ rss %.0fMiB",
                state.epoch + 1, config.train.epochs, state.iteration, iterationsPerEpoch, lr, loss, top1 * 100,
                meter.data / n,
                meter.step / n, clipsPerSecond, ProgressDisplay.duration(perIteration * Double(left)), rss))
        workDirectory.append(
            jsonLine([
                "mode": "train", "epoch": state.epoch + 1, "iteration": state.iteration,
                "global_iteration": state.globalIteration,
                "lr": lr, "loss": loss, "top1": top1, "data_time": meter.data / n, "step_time": meter.step / n,
                "clips_per_s": clipsPerSecond, "eta_s": perIteration * Double(left), "rss_mib": rss,
            ]), to: "metrics.jsonl")
        tensorBoard?.scalars(
            [
                ("train/loss", loss), ("train/lr", lr), ("train/top1", top1), ("train/data_time", meter.data / n),
                ("train/step_time", meter.step / n), ("train/clips_per_s", clipsPerSecond),
            ], step: state.globalIteration)
    }

    /// A line to the output (clearing a progress bar on a terminal) and to train.log, by rank 0;
    /// other ranks' lines that only they can tell (their bad videos) go to standard error.
    func log(_ line: String, everyRank: Bool = false) {
        guard parallel.isRoot else {
            if everyRank { Files.emit("nltrain rank \(parallel.rank): \(line)\n", to: .standardError) }
            return
        }
        let stamped = "\(timestamp()) \(line)"
        logLock.withLock {
            // gone (a closed pipe): train.log has it
            Files.emit((interactive ? "\r\u{1B}[K" : "") + stamped + "\n", to: output)
            workDirectory?.append(stamped, to: "train.log")
        }
    }
}
