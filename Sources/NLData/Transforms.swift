import NLTensor
import NLVideo

/// The clip transforms ClipPipeline runs, with mmaction2's names and behaviour. One random draw
/// per clip, shared by all its frames. Geometry works on the decoder's RGB bytes; `Normalize`
/// writes the floats the model reads, channels-last (T, H, W, 3).

/// The short side frames are decoded at: fixed, or drawn per clip from a range (inclusive), as
/// mmaction2's Resize(scale=(-1, S)) and RandomRescale(scale_range). Done inside the decoder's
/// swscale call.
public struct ShortEdgeResize: Sendable, Equatable {
    public var sizes: ClosedRange<Int>
    public var interpolation: Interpolation

    public init(_ size: Int, interpolation: Interpolation = .bilinear) {
        self.init(range: size...size, interpolation: interpolation)
    }
    public init(range: ClosedRange<Int>, interpolation: Interpolation = .bilinear) {
        precondition(range.lowerBound > 0, "short side must be positive")
        sizes = range
        self.interpolation = interpolation
    }

    public func draw(using generator: inout SeededGenerator) -> Int {
        sizes.count == 1 ? sizes.lowerBound : sizes.lowerBound + generator.below(sizes.count)
    }
}

/// A crop of the clip pipeline: the square views of `size` one clip gives (the draws, if any,
/// from the clip's stream). A new crop is a type here and a value of the config's choice mapped
/// to it in DataSetup (docs/extending.md).
public protocol ClipCrop: Sendable {
    /// The side of every view.
    var size: Int { get }
    /// Views a clip gives (one, or three for ThreeCrop).
    var viewsPerClip: Int { get }
    func views(of clip: VideoFrames, using generator: inout SeededGenerator) -> [VideoFrames]
}

extension ClipCrop {
    public var viewsPerClip: Int { 1 }
}

/// A square crop at a random place, as mmaction2's RandomCrop: offsets drawn in [0, side - size)
/// (the last position is never drawn, as there), 0 where the frame is not larger than the crop.
public struct RandomCrop: ClipCrop, Equatable {
    public var size: Int
    public init(size: Int) { self.size = size }

    public func views(of clip: VideoFrames, using generator: inout SeededGenerator) -> [VideoFrames] {
        let y = clip.height > size ? generator.below(clip.height - size) : 0
        let x = clip.width > size ? generator.below(clip.width - size) : 0
        return [clip.cropped(x: x, y: y, width: min(size, clip.width), height: min(size, clip.height))]
    }
}

/// A square crop in the middle, as mmaction2's CenterCrop (offsets rounded down).
public struct CenterCrop: ClipCrop, Equatable {
    public var size: Int
    public init(size: Int) { self.size = size }

    public func views(of clip: VideoFrames, using generator: inout SeededGenerator) -> [VideoFrames] {
        let (w, h) = (min(size, clip.width), min(size, clip.height))
        return [clip.cropped(x: (clip.width - w) / 2, y: (clip.height - h) / 2, width: w, height: h)]
    }
}

/// Three square crops for testing, as mmaction2's ThreeCrop: upper left, lower right, centre
/// (on a landscape frame cropped to its height: left, right, centre).
public struct ThreeCrop: ClipCrop, Equatable {
    public var size: Int
    public init(size: Int) { self.size = size }
    public var viewsPerClip: Int { 3 }

    public func views(of clip: VideoFrames, using generator: inout SeededGenerator) -> [VideoFrames] {
        let (w, h) = (min(size, clip.width), min(size, clip.height))
        let (xStep, yStep) = ((clip.width - w) / 2, (clip.height - h) / 2)
        return [(0, 0), (2 * xStep, 2 * yStep), (xStep, yStep)].map {
            clip.cropped(x: $0.0, y: $0.1, width: w, height: h)
        }
    }
}

/// Flips every frame left to right with probability `probability` (one draw per clip).
public struct RandomHorizontalFlip: Sendable, Equatable {
    public var probability: Double
    public init(probability: Double = 0.5) { self.probability = probability }

    /// Whether this clip is flipped.
    public func draw(using generator: inout SeededGenerator) -> Bool { Double(generator.uniform()) < probability }
}

/// mmaction2's MultiScaleCrop (random_crop=False): a crop whose width and height are each one of
/// `scales` times the short side (their scale indices at most `maxWHScaleGap` apart), at one of
/// five fixed places (corners and centre), then resized to `inputSize` square (bilinear, as the
/// Resize that follows it in mmaction2's I3D recipe).
public struct MultiScaleCrop: ClipCrop, Equatable {
    public var inputSize: Int
    public var scales: [Double]
    public var maxWHScaleGap: Int
    public var size: Int { inputSize }

    public init(inputSize: Int, scales: [Double] = [1, 0.875, 0.75, 0.66], maxWHScaleGap: Int = 1) {
        (self.inputSize, self.scales, self.maxWHScaleGap) = (inputSize, scales, maxWHScaleGap)
    }

    public func views(of clip: VideoFrames, using generator: inout SeededGenerator) -> [VideoFrames] {
        let base = min(clip.width, clip.height)
        let sizes = scales.map { Int(Double(base) * $0) }
        var candidates: [(w: Int, h: Int)] = []
        for (i, h) in sizes.enumerated() {
            for (j, w) in sizes.enumerated() where abs(i - j) <= maxWHScaleGap { candidates.append((w, h)) }
        }
        var (w, h) = candidates[generator.below(candidates.count)]
        if abs(w - inputSize) < 3 { w = inputSize }
        if abs(h - inputSize) < 3 { h = inputSize }
        (w, h) = (min(w, clip.width), min(h, clip.height))
        let (xs, ys) = ((clip.width - w) / 4, (clip.height - h) / 4)
        let places = [(0, 0), (4 * xs, 0), (0, 4 * ys), (4 * xs, 4 * ys), (2 * xs, 2 * ys)]
        let (x, y) = places[generator.below(places.count)]
        return [clip.cropped(x: x, y: y, width: w, height: h).resized(width: inputSize, height: inputSize)]
    }
}

/// (x - mean) / std per RGB channel, on the scale the values have by then (mmaction2: bytes, mean
/// 123.675, 116.28, 103.53 and std 58.395, 57.12, 57.375).
public struct Normalize: Sendable, Equatable {
    public var mean: [Float]
    public var std: [Float]

    public init(mean: [Float], std: [Float]) {
        precondition(
            mean.count == 3 && std.count == 3 && std.allSatisfy { $0 > 0 },
            "mean and std are three values, std positive")
        (self.mean, self.std) = (mean, std)
    }

    /// Writes the clip as floats, channels-last (T, H, W, 3), at `destination`.
    public func write(_ clip: VideoFrames, into destination: UnsafeMutablePointer<Float>) {
        // y = x * gain + shift, per channel
        let gain = (0..<3).map { 1 / std[$0] }, shift = (0..<3).map { -mean[$0] / std[$0] }
        clip.pixels.withUnsafeBufferPointer { source in
            let pixels = clip.count * clip.height * clip.width
            for p in 0..<pixels {
                for c in 0..<3 { destination[p * 3 + c] = Float(source[p * 3 + c]) * gain[c] + shift[c] }
            }
        }
    }
}

extension VideoFrames {
    /// The same region of every frame.
    public func cropped(x: Int, y: Int, width w: Int, height h: Int) -> VideoFrames {
        precondition(x >= 0 && y >= 0 && x + w <= width && y + h <= height, "crop outside the frame")
        var out = [UInt8](repeating: 0, count: count * h * w * 3)
        pixels.withUnsafeBufferPointer { source in
            out.withUnsafeMutableBufferPointer { target in
                for t in 0..<count {
                    for r in 0..<h {
                        let from = ((t * height + y + r) * width + x) * 3, to = (t * h + r) * w * 3
                        (target.baseAddress! + to).update(from: source.baseAddress! + from, count: w * 3)
                    }
                }
            }
        }
        return VideoFrames(count: count, height: h, width: w, pixels: out)
    }

    /// Every frame mirrored left to right.
    public mutating func flipHorizontally() {
        let (w, rows) = (width, count * height)
        pixels.withUnsafeMutableBufferPointer { p in
            for r in 0..<rows {
                let row = p.baseAddress! + r * w * 3
                for x in 0..<(w / 2) {
                    for c in 0..<3 { swap(&row[x * 3 + c], &row[(w - 1 - x) * 3 + c]) }
                }
            }
        }
    }

    /// Every frame resized by bilinear interpolation with pixel centres aligned (OpenCV's
    /// INTER_LINEAR, as mmcv's imresize).
    public func resized(width w: Int, height h: Int) -> VideoFrames {
        var out = [UInt8](repeating: 0, count: count * h * w * 3)
        let (sx, sy) = (Double(width) / Double(w), Double(height) / Double(h))
        func taps(_ i: Int, _ scale: Double, _ limit: Int) -> (Int, Int, Double) {
            let position = max(0, (Double(i) + 0.5) * scale - 0.5)
            let low = min(Int(position), limit - 1)
            return (low, min(low + 1, limit - 1), position - Double(low))
        }
        let columns = (0..<w).map { taps($0, sx, width) }, rows = (0..<h).map { taps($0, sy, height) }
        pixels.withUnsafeBufferPointer { source in
            for t in 0..<count {
                for (r, (y0, y1, fy)) in rows.enumerated() {
                    for (x, (x0, x1, fx)) in columns.enumerated() {
                        for c in 0..<3 {
                            func at(_ yy: Int, _ xx: Int) -> Double {
                                Double(source[((t * height + yy) * width + xx) * 3 + c])
                            }
                            let top = at(y0, x0) * (1 - fx) + at(y0, x1) * fx,
                                bottom = at(y1, x0) * (1 - fx) + at(y1, x1) * fx
                            out[((t * h + r) * w + x) * 3 + c] = UInt8(
                                min(255, max(0, (top * (1 - fy) + bottom * fy).rounded())))
                        }
                    }
                }
            }
        }
        return VideoFrames(count: count, height: h, width: w, pixels: out)
    }
}
