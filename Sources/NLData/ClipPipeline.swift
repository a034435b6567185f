import NLTensor
import NLVideo

/// A clip's whole way from its video to the model's floats, built from the config (DataSetup)
/// and run by the loader once per video, with one random draw stream for the video:
///
///     frame indices (SampleFrames) -> a short side, drawn per video, that FFmpeg's scaler decodes
///     at -> the crop (one view, or three) -> the flip -> normalised floats, channels-last (T, H, W, 3)
///
/// In training a video's clips are joined in time into one view; in evaluation each clip (and
/// each of its crops) is a view of its own.
public struct ClipPipeline: Sendable {
    public var sampler: SampleFrames
    public var resize: ShortEdgeResize
    /// RandomCrop or MultiScaleCrop in training, CenterCrop or ThreeCrop in testing.
    public var crop: any ClipCrop
    public var flip: RandomHorizontalFlip?
    public var normalize: Normalize

    public init(
        sampler: SampleFrames, resize: ShortEdgeResize, crop: any ClipCrop, flip: RandomHorizontalFlip? = nil,
        normalize: Normalize
    ) {
        (self.sampler, self.resize, self.crop, self.flip, self.normalize) = (sampler, resize, crop, flip, normalize)
    }

    /// Whether a video's clips are joined into one view (training) or each is its own (testing).
    public var joinsClips: Bool { !sampler.testMode }

    /// Views per video: one when joining clips, else clips x the crop's views.
    public var viewsPerVideo: Int { joinsClips ? 1 : crop.viewsPerClip * sampler.numClips }

    /// Frames per view.
    public var framesPerView: Int { joinsClips ? sampler.numClips * sampler.clipLength : sampler.clipLength }

    /// Height and width of every view.
    public var outputSize: Int { crop.size }

    /// (T, H, W, 3) of every view.
    public var viewShape: [Int] { [framesPerView, outputSize, outputSize, 3] }

    /// The views of the video `reader` reads, drawing from `generator`: the frame indices, the
    /// short side, then each clip's crop and flip. Throws what decoding throws, and when a view
    /// comes out smaller than `outputSize` (it would leave another clip's pixels in a batch).
    /// `frames` restricts the sampling to a window of the video (nil: all of it).
    public func views(
        of reader: VideoReader, frames window: Range<Int>? = nil, using generator: inout SeededGenerator
    )
        throws -> [VideoFrames]
    {
        let window = window.map { $0.clamped(to: 0..<reader.info.frames) } ?? 0..<reader.info.frames
        guard !window.isEmpty else {
            throw DataError("\(reader.path): no frame in the window asked for (the video has \(reader.info.frames))")
        }
        let indices = sampler.indices(frameCount: window.count, using: &generator).map { $0 + window.lowerBound }
        let short = resize.draw(using: &generator)
        let frames = try reader.frames(at: indices, size: .shortSide(short), interpolation: resize.interpolation)
        let clips = joinsClips ? 1 : sampler.numClips, size = frames.pixels.count / clips
        let views = (0..<clips).flatMap { clip in
            let part =
                clips == 1
                ? frames
                : VideoFrames(
                    count: frames.count / clips, height: frames.height, width: frames.width,
                    pixels: Array(frames.pixels[(clip * size)..<((clip + 1) * size)]))
            return cropAndFlip(part, using: &generator)
        }
        let side = outputSize
        if let small = views.first(where: { $0.width != side || $0.height != side }) {
            throw DataError(
                "\(reader.path): its \(frames.width)x\(frames.height) frames give a \(small.width)x\(small.height) view, not \(side)x\(side)"
            )
        }
        return views
    }

    /// Writes a view as the model's floats, normalised, channels-last (T, H, W, 3), at `destination`.
    public func write(_ view: VideoFrames, into destination: UnsafeMutablePointer<Float>) {
        normalize.write(view, into: destination)
    }

    /// The crops of one clip, then flipped (one draw for the clip).
    func cropAndFlip(_ clip: VideoFrames, using generator: inout SeededGenerator) -> [VideoFrames] {
        var views = crop.views(of: clip, using: &generator)
        if let flip, flip.draw(using: &generator) {
            for i in views.indices { views[i].flipHorizontally() }
        }
        return views
    }
}
