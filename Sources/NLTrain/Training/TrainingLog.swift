import Foundation
import NLData
import NLDistributed
import NLTensor

/// What a training run tells, and where: its lines on the output (clearing a progress bar on a
/// terminal) and in train.log, its records in metrics.jsonl, its scalars in TensorBoard, the
/// progress bar, and the sums its iteration lines are made of. Rank 0 writes; other ranks' lines
/// that only they can tell (their bad videos) go to standard error. Lines may come from the
/// loader's threads (bad videos), hence the lock. The Trainer calls it as `log("...")`.
final class RunLog: @unchecked Sendable {
    let output: FileHandle
    /// Whether the output is a terminal (a progress bar is drawn there).
    let interactive: Bool
    let parallel: DataParallel
    /// Set once rank 0 has taken the work directory.
    var workDirectory: WorkDirectory?
    /// The run's TensorBoard events (rank 0, with [train] tensorboard).
    var tensorBoard: EventFileWriter?
    var bar: ProgressDisplay?
    var meter = Meter()
    private let lock = NSLock()

    init(output: FileHandle, parallel: DataParallel) {
        (self.output, self.parallel) = (output, parallel)
        interactive = isatty(output.fileDescriptor) != 0
    }

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

    /// A line of the log, by rank 0 (or, with `everyRank`, by every rank).
    func callAsFunction(_ line: String, everyRank: Bool = false) {
        guard parallel.isRoot else {
            if everyRank { Files.emit("nltrain rank \(parallel.rank): \(line)\n", to: .standardError) }
            return
        }
        let stamped = "\(timestamp()) \(line)"
        lock.withLock {
            // Gone (a closed pipe): train.log has it.
            Files.emit((interactive ? "\r\u{1B}[K" : "") + stamped + "\n", to: output)
            workDirectory?.append(stamped, to: "train.log")
        }
    }

    /// A record of metrics.jsonl (rank 0).
    func record(_ values: [String: Any]) {
        guard parallel.isRoot else { return }
        workDirectory?.append(jsonLine(values), to: "metrics.jsonl")
    }

    /// An iteration line over the last iterations: loss and top-1 over every rank's clips, times
    /// and memory of rank 0, which writes it (the line, its record and its scalars). Every rank
    /// calls it at the same iterations: the sums are the job's.
    func report(state: TrainingState, epochs: Int, lr: Double, iterationsPerEpoch: Int, left: Int) {
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
        self(
            String(
                format:
                    "epoch %d/%d iter %d/%d lr %.6g loss %.4f top1 %.1f%% data %.3fs step %.3fs %.2f clips/s eta %@ rss %.0fMiB",
                state.epoch + 1, epochs, state.iteration, iterationsPerEpoch, lr, loss, top1 * 100, meter.data / n,
                meter.step / n, clipsPerSecond, ProgressDisplay.duration(perIteration * Double(left)), rss))
        record([
            "mode": "train", "epoch": state.epoch + 1, "iteration": state.iteration,
            "global_iteration": state.globalIteration,
            "lr": lr, "loss": loss, "top1": top1, "data_time": meter.data / n, "step_time": meter.step / n,
            "clips_per_s": clipsPerSecond, "eta_s": perIteration * Double(left), "rss_mib": rss, "batch": global[2] / n,
        ])
        tensorBoard?.scalars(
            [
                ("train/loss", loss), ("train/lr", lr), ("train/top1", top1 * 100), ("train/data_time", meter.data / n),
                ("train/step_time", meter.step / n), ("train/clips_per_s", clipsPerSecond),
                ("train/batch", global[2] / n),
            ], step: state.globalIteration)
    }
}
