import NLData
import Testing
import NLTensor
import NLVideo

/// A clip whose pixel (t, y, x) holds (x, y, t): where a crop came from can be read off it.
func coordinateClip(frames: Int, height: Int, width: Int) -> VideoFrames {
    var pixels: [UInt8] = []
    for t in 0..<frames { for y in 0..<height { for x in 0..<width { pixels += [UInt8(x), UInt8(y), UInt8(t)] } } }
    return VideoFrames(count: frames, height: height, width: width, pixels: pixels)
}

struct TransformTests {
    let clip = coordinateClip(frames: 2, height: 12, width: 20)

    func origin(_ v: VideoFrames) -> (x: Int, y: Int) { (Int(v.pixels[0]), Int(v.pixels[1])) }

    @Test func centerAndThreeCrop() {
        var generator = SeededGenerator(seed: 1)  // the fixed crops draw nothing
        let center = CenterCrop(size: 8).views(of: clip, using: &generator)[0]
        #expect(center.width == 8 && center.height == 8 && origin(center) == (6, 2))
        // mmaction2's ThreeCrop: upper left, lower right, centre.
        let three = ThreeCrop(size: 8).views(of: clip, using: &generator).map(origin)
        #expect(three.map(\.x) == [0, 12, 6] && three.map(\.y) == [0, 4, 2])
        // Every frame is cut at the same place.
        #expect(center.frame(1).enumerated().allSatisfy { $0.offset % 3 != 2 || $0.element == 1 })
    }

    @Test func randomCropDrawsOffsetsBelowTheLast() {
        var generator = SeededGenerator(seed: 5)
        var xs = Set<Int>(), ys = Set<Int>()
        for _ in 0..<400 {
            let c = RandomCrop(size: 8).views(of: clip, using: &generator)[0]
            #expect(c.width == 8 && c.height == 8)
            xs.insert(origin(c).x)
            ys.insert(origin(c).y)
        }
        #expect(xs == Set(0..<12) && ys == Set(0..<4))  // [0, 20 - 8) and [0, 12 - 8), as mmaction2
        let small = RandomCrop(size: 30).views(of: clip, using: &generator)[0]
        #expect(small.width == 20 && small.height == 12)
    }

    @Test func flipMirrorsEveryFrameOnOneDraw() {
        var flipped = clip
        flipped.flipHorizontally()
        #expect(origin(flipped) == (19, 0) && flipped.pixels[(1 * 12 * 20 + 20 - 1) * 3] == 0)
        var generator = SeededGenerator(seed: 1)
        var outcomes = Set<Bool>()
        for _ in 0..<50 {
            var c = clip
            if RandomHorizontalFlip(probability: 0.5).draw(using: &generator) { c.flipHorizontally() }
            outcomes.insert(c.pixels == flipped.pixels)
            #expect(c.pixels == flipped.pixels || c.pixels == clip.pixels)
        }
        #expect(outcomes == [true, false])
    }

    /// OpenCV INTER_LINEAR's sampling: 2 x 2 to 4 x 4, samples at (i + 0.5) / 2 - 0.5, clamped;
    /// rows 1 and 2 mix the rows [0, 25, 75, 100] and [200, 160, 80, 40] by 3:1 and 1:3.
    @Test func resizeIsOpenCVBilinear() {
        let tiny = VideoFrames(count: 1, height: 2, width: 2, pixels: [0, 0, 0, 100, 0, 0, 200, 0, 0, 40, 0, 0])
        let up = tiny.resized(width: 4, height: 4)
        let red = stride(from: 0, to: up.pixels.count, by: 3).map { up.pixels[$0] }
        // Row weights (1, 0), (0.75, 0.25), (0.25, 0.75), (0, 1) on rows [0, 100] and [200, 40].
        #expect(red == [0, 25, 75, 100, 50, 59, 76, 85, 150, 126, 79, 55, 200, 160, 80, 40])
    }

    @Test func multiScaleCropPicksScaledCropsAndResizes() {
        var generator = SeededGenerator(seed: 2)
        let crop = MultiScaleCrop(inputSize: 8)
        let big = coordinateClip(frames: 1, height: 12, width: 20)
        var origins = Set<[Int]>()
        for _ in 0..<200 {
            let c = crop.views(of: big, using: &generator)[0]
            #expect(c.width == 8 && c.height == 8)
            origins.insert([Int(c.pixels[0]), Int(c.pixels[1])])
        }
        #expect(origins.count > 4)
    }

    /// mmaction2's I3D recipe at half size: MultiScaleCrop(112, (1, 0.8), random_crop=False,
    /// max_wh_scale_gap=0) on a 170x128 frame: crops of 128x128 or 102x102 at the five places
    /// mmaction2's _sample_fix_offset gives (steps of (170 - w) / 4 and (128 - h) / 4), resized.
    @Test func multiScaleCropAsMMAction2sI3DRecipe() {
        var generator = SeededGenerator(seed: 4)
        let crop = MultiScaleCrop(inputSize: 112, scales: [1, 0.8], maxWHScaleGap: 0)
        let frame = coordinateClip(frames: 1, height: 128, width: 170)
        var seen = Set<[Int]>()
        for _ in 0..<400 {
            let c = crop.views(of: frame, using: &generator)[0]
            #expect(c.width == 112 && c.height == 112)
            seen.insert([Int(c.pixels[0]), Int(c.pixels[1])])  // the crop's origin, coded in the first pixel
        }
        let expected: Set<[Int]> = [[0, 0], [40, 0], [20, 0], [68, 0], [0, 24], [68, 24], [34, 12]]
        #expect(seen == expected, "\(seen.sorted { $0.lexicographicallyPrecedes($1) })")
    }

    @Test func normalize() {
        let pixel = VideoFrames(count: 1, height: 1, width: 1, pixels: [255, 0, 128])
        var out = [Float](repeating: 0, count: 3)
        out.withUnsafeMutableBufferPointer {
            Normalize(mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375]).write(pixel, into: $0.baseAddress!)
        }
        #expect(abs(out[0] - (255 - 123.675) / 58.395) < 1e-5 && abs(out[1] + 116.28 / 57.12) < 1e-5)

    }
}
