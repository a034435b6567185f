import Foundation
import NLTensor
import NLVideo

/// The batches of one epoch, made ahead by the loader's workers.
///
/// The ring holds `depth` batch buffers: the one the caller holds and `depth - 1` being filled.
/// A video's views go to consecutive positions and may span any number of batches (10x3 views in
/// batches of 8); a view whose batch has no buffer yet is parked, decoded, until the caller frees
/// one. A video is started only when its first view can be written, which bounds what is parked.
public final class BatchIterator: @unchecked Sendable {
    private let loader: DataLoader
    private let epoch: Int
    private let order: [Int]
    private let batchSize: Int
    private let views: Int
    private let end: Int  // batches in the epoch
    private let jobEnd: Int  // videos needed for them
    private let depth: Int
    private var slots: [Tensor]
    private var labels: [[Int]]
    private var videos: [[Int]]
    private var failed: [[Bool]]
    private var filled: [Int]
    private var current: Int  // the next batch to hand out
    private var nextJob: Int
    /// Decoded views waiting for their batch's buffer.
    private var parked: [View] = []
    private var error: Error?
    private var stopped = false
    private var activeWorkers = 0
    private let condition = NSCondition()
    /// Seconds the caller has spent waiting for batches.
    public private(set) var waitSeconds = 0.0
    /// Asked while the caller waits for a batch: true ends the wait with `Stopped` (a signal
    /// asking the run to stop must not wait for a read that may never end).
    public var shouldStop: (() -> Bool)?
    /// The videos workers are reading now, by job, since when.
    private var inFlight: [Int: (started: Date, video: Int, attempt: Int)] = [:]
    /// Jobs whose read stalled past the read timeout, and how often: another thread redoes
    /// each, and what an earlier one makes, should it ever return, is dropped.
    private var retries: [Int: Int] = [:]
    /// Workers still stuck in such a read: the iterator's end does not wait for them.
    private var stalledWorkers = 0

    /// The caller's wait for a batch ended by `shouldStop`.
    public struct Stopped: Error {}

    /// One view for one position of the epoch: its frames, or nil for a video that failed.
    private struct View {
        let position: Int
        let frames: VideoFrames?
        let label: Int
        let video: Int
    }

    init(loader: DataLoader, epoch: Int, first: Int) {
        self.loader = loader
        self.epoch = epoch
        order = loader.order(epoch: epoch)
        batchSize = loader.options.batchSize
        views = loader.viewsPerVideo
        end = loader.batchesPerEpoch
        let positions = min(order.count * views, end * batchSize)
        jobEnd = (positions + views - 1) / views
        depth = max(loader.options.prefetch, 1) + 1
        slots = (0..<depth).map { _ in Tensor(zeros: [loader.options.batchSize] + loader.clipShape) }
        labels = Array(repeating: Array(repeating: 0, count: batchSize), count: depth)
        videos = labels
        failed = Array(repeating: Array(repeating: false, count: batchSize), count: depth)
        filled = Array(repeating: 0, count: depth)
        current = min(first, end)
        nextJob = current * batchSize / views
        for _ in 0..<loader.options.workers { startWorker { [self] in work() } }
    }

    deinit { stop() }

    /// Starts a worker thread running `body` (counted in activeWorkers until it returns).
    private func startWorker(_ body: @escaping @Sendable () -> Void) {
        activeWorkers += 1
        let thread = Thread(block: body)
        thread.name = "nl-loader"
        thread.start()
    }

    /// Stops the workers after their current clip and waits for them, but not for those stuck in
    /// a read that does not return (a hung mount), nor more than a few seconds.
    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        let deadline = Date().addingTimeInterval(5)
        while activeWorkers > stalledWorkers && condition.wait(until: deadline) {}
        condition.unlock()
    }

    private func size(ofBatch b: Int) -> Int { min(batchSize, jobEnd * views - b * batchSize) }

    /// Whether position `p`'s batch has a buffer to fill: every batch from the next one handed out
    /// up to the ring's size, less the buffer the caller holds.
    private func writable(_ p: Int) -> Bool { p / batchSize < current + depth - 1 }

    /// The next batch, or nil at the end of the epoch. Throws when too many videos fail.
    public func next() throws -> Batch? {
        condition.lock()
        defer { condition.unlock() }
        guard current < end else { return nil }
        // The caller is done with the previous batch: its buffer may be refilled.
        if current > 0 { filled[(current - 1) % depth] = 0 }
        condition.broadcast()
        let b = current, slot = b % depth, count = size(ofBatch: b)
        let start = Date()
        while filled[slot] < count && error == nil {
            if loader.options.workers == 0 {
                condition.unlock()
                let worked = runNextJob()
                condition.lock()
                // Without workers the caller does the work; batch b's views can always be made.
                if !worked && filled[slot] < count && error == nil {
                    error = DataError("internal error: batch \(b) cannot be filled")
                }
            } else {
                // a stop or a stalled read is looked at between waits
                _ = condition.wait(until: Date().addingTimeInterval(0.25))
                if shouldStop?() == true {
                    waitSeconds += Date().timeIntervalSince(start)
                    throw Stopped()
                }
                abandonStalledReads()
            }
        }
        waitSeconds += Date().timeIntervalSince(start)
        if let error { throw error }
        current += 1
        let clips = count == batchSize ? slots[slot] : slots[slot].slice(0..<count)
        return Batch(
            index: b, clips: clips, labels: Array(labels[slot].prefix(count)),
            videos: Array(videos[slot].prefix(count)), failed: Array(failed[slot].prefix(count)))
    }

    private func work() {
        while runNextJob() {}
        condition.lock()
        activeWorkers -= 1
        condition.broadcast()
        condition.unlock()
    }

    /// Writes a parked view whose buffer is now free, or decodes the next video and writes (or
    /// parks) its views. False when there is nothing left to do, or, without workers, nothing
    /// to do yet.
    @discardableResult
    private func runNextJob() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while true {
            guard !stopped && error == nil else { return false }
            if let i = parked.firstIndex(where: { writable($0.position) }) {
                write(parked.remove(at: i))
                return true
            }
            if nextJob < jobEnd && writable(nextJob * views) { break }
            if (nextJob >= jobEnd && parked.isEmpty) || loader.options.workers == 0 { return false }
            condition.wait()
        }
        let job = nextJob
        nextJob += 1
        condition.unlock()
        let outcome = load(job, try: 0, video: order[job], attempt: 0)
        condition.lock()
        return finish(job, try: 0, outcome)
    }

    /// Writes (or parks) what the `try`-th loading of `job` gave, unless the job has been taken
    /// over since; called and returns with the lock held. False when the epoch must stop.
    private func finish(
        _ job: Int, try tried: Int, _ outcome: (Result<[VideoFrames], Error>, label: Int, video: Int)
    ) -> Bool {
        guard retries[job, default: 0] == tried else {
            stalledWorkers -= 1  // a stalled read came back after all
            return true
        }
        inFlight[job] = nil
        let (results, label, video) = outcome
        switch results {
        case .failure(let e):
            error = error ?? e
            condition.broadcast()
            return false
        case .success(let clips):
            for v in 0..<views {
                let view = View(
                    position: job * views + v, frames: v < clips.count ? clips[v] : nil, label: label, video: video)
                if writable(view.position) { write(view) } else { parked.append(view) }
            }
            return true
        }
    }

    /// Counts each read that has stalled past the read timeout as a broken video (bad_videos.txt)
    /// and has another thread do its job again, from a replacement video in training (failed
    /// views in evaluation), as for a video that fails to decode. Called with the lock held.
    private func abandonStalledReads() {
        let timeout = loader.options.readTimeout
        guard timeout > 0, error == nil, !stopped else { return }
        for (job, read) in inFlight where Date().timeIntervalSince(read.started) > timeout {
            retries[job, default: 0] += 1
            stalledWorkers += 1
            let tried = retries[job]!
            inFlight[job] = nil
            let entry = loader.dataset.entries[read.video]
            let stall = DataError(
                "reading stalled for more than \(Int(timeout)) s (data.read_timeout): a hung network or FUSE mount, a file still being written?"
            )
            if let log = loader.badVideos,
                let stop = log.record(entry, error: stall, datasetSize: loader.dataset.entries.count)
            {
                error = stop
                condition.broadcast()
                return
            }
            startWorker { [self] in
                let outcome: (Result<[VideoFrames], Error>, label: Int, video: Int) =
                    loader.mode == .evaluation
                    ? (.success([]), entry.label, read.video)
                    : load(
                        job, try: tried,
                        video: loader.replacement(for: read.video, epoch: epoch, attempt: read.attempt),
                        attempt: read.attempt + 1)
                condition.lock()
                if finish(job, try: tried, outcome) {
                    condition.unlock(); work()
                } else {
                    activeWorkers -= 1; condition.broadcast(); condition.unlock()
                }
            }
        }
    }

    /// Normalises a view into its batch's buffer (outside the lock) and counts it; called and
    /// returns with the lock held.
    private func write(_ view: View) {
        let slot = (view.position / batchSize) % depth, offset = view.position % batchSize
        let size = slots[slot].count / batchSize, destination = slots[slot].data + offset * size
        condition.unlock()
        if let frames = view.frames {
            loader.pipeline.write(frames, into: destination)
        } else {
            destination.update(repeating: 0, count: size)
        }
        condition.lock()
        labels[slot][offset] = view.label
        videos[slot][offset] = view.video
        failed[slot][offset] = view.frames == nil
        filled[slot] += 1
        condition.broadcast()
    }

    /// The views of the job'th video of the epoch (its `try`-th loading), `video` at `attempt`
    /// on: in training, of a replacement video when it fails; in evaluation, none (its views are
    /// marked failed). Each video it reads is noted in `inFlight`, for the read timeout; a job
    /// taken over meanwhile ends at once (what it gives is dropped).
    private func load(
        _ job: Int, try tried: Int, video first: Int, attempt firstAttempt: Int
    ) -> (Result<[VideoFrames], Error>, label: Int, video: Int) {
        var video = first
        for attempt in firstAttempt..<max(16, firstAttempt + 1) {
            condition.lock()
            let current = retries[job, default: 0] == tried
            if current { inFlight[job] = (Date(), video, attempt) }
            condition.unlock()
            guard current else { return (.success([]), 0, video) }
            do {
                let clips = try loader.views(of: video, epoch: epoch, attempt: attempt, job: job)
                return (.success(clips), loader.dataset.entries[video].label, video)
            } catch {
                let entry = loader.dataset.entries[video]
                if let log = loader.badVideos,
                    let stop = log.record(entry, error: error, datasetSize: loader.dataset.entries.count)
                {
                    return (.failure(stop), entry.label, video)
                }
                if loader.mode == .evaluation { return (.success([]), entry.label, video) }
                video = loader.replacement(for: video, epoch: epoch, attempt: attempt)
            }
        }
        return (.failure(DataError("16 videos in a row failed to decode; see bad_videos.txt")), 0, video)
    }
}
