import NLTensor
import NLVideo

/// Which frames of a video make its clips: mmaction2's SampleFrames. A clip is `clipLength`
/// frames `frameInterval` apart; `numClips` clips per video. Training draws each clip's start at
/// random within its share of the video; testing spaces the clips evenly (one clip: the centre).
/// Frames past the end loop back to the start, so short videos still give full clips.
/// TSN-style segments are `clipLength` 1 with `numClips` segments.
public struct SampleFrames: Sendable, Equatable {
    public var clipLength: Int
    public var frameInterval: Int
    public var numClips: Int
    public var testMode: Bool

    public init(clipLength: Int, frameInterval: Int = 1, numClips: Int = 1, testMode: Bool = false) {
        precondition(
            clipLength > 0 && frameInterval > 0 && numClips > 0,
            "clip_len, frame_interval and num_clips must be positive")
        self.clipLength = clipLength
        self.frameInterval = frameInterval
        self.numClips = numClips
        self.testMode = testMode
    }

    /// TSN's sampling: one frame from each of `segments` equal parts of the video.
    public static func segments(_ segments: Int, testMode: Bool = false) -> SampleFrames {
        SampleFrames(clipLength: 1, frameInterval: 1, numClips: segments, testMode: testMode)
    }

    /// The frame indices, clip after clip (`numClips * clipLength` of them), for a video of
    /// `frameCount` frames. Training uses `generator`; testing does not.
    public func indices(frameCount: Int, using generator: inout SeededGenerator) -> [Int] {
        precondition(frameCount > 0, "a video with no frame")
        let offsets = testMode ? testOffsets(frameCount) : trainOffsets(frameCount, &generator)
        return offsets.flatMap { offset in (0..<clipLength).map { (offset + $0 * frameInterval) % frameCount } }
    }

    /// mmaction2's _get_train_clips, case by case.
    private func trainOffsets(_ n: Int, _ generator: inout SeededGenerator) -> [Int] {
        let span = clipLength * frameInterval, room = n - span + 1
        let average = room >= 0 ? room / numClips : -((-room + numClips - 1) / numClips)  // Python's floor division
        if average > 0 {
            return (0..<numClips).map { $0 * average + generator.below(average) }
        } else if n > max(numClips, span) {
            return (0..<numClips).map { _ in generator.below(room) }.sorted()
        } else if average == 0 {
            let ratio = Double(room) / Double(numClips)
            return (0..<numClips).map { Int((Double($0) * ratio).rounded(.toNearestOrEven)) }
        }
        return [Int](repeating: 0, count: numClips)
    }

    /// mmaction2's _get_test_clips: clips evenly spaced, each in the middle of its share.
    private func testOffsets(_ n: Int) -> [Int] {
        let span = clipLength * frameInterval
        guard n > span - 1 else { return [Int](repeating: 0, count: numClips) }
        let average = Double(n - span + 1) / Double(numClips)
        return (0..<numClips).map { Int(Double($0) * average + average / 2) }
    }
}
