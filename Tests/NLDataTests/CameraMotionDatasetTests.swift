import Foundation
import NLData
import NLTestSupport
import NLVideo
import Testing

/// scripts/data/make_camera_motion_dataset.sh, on a still texture filmed as its classes say: each
/// video's frames move as its label says (a pan shifts the picture the other way, a zoom in
/// enlarges it), the sources too short or not videos are passed over, and the loader reads the
/// result.
struct CameraMotionDatasetTests {
    static let dataset: String = {
        let folder = scratchDirectory("camera-motion", made: true), sources = "\(folder)/sources"
        try! FileManager.default.createDirectory(atPath: sources, withIntermediateDirectories: true)
        // Blobs of about 8 pixels, the same in every frame; a 1-second video and a text file besides.
        for (name, seconds) in [("texture.mkv", 3), ("short.mp4", 1)] {
            let r = try! run(
                "/usr/bin/ffmpeg",
                [
                    "-v", "error", "-f", "lavfi", "-i",
                    "color=c=gray:s=64x48:d=\(seconds):r=25,noise=alls=100:allf=u,scale=512:384:flags=bicubic",
                    "-pix_fmt", "yuv420p", "\(sources)/\(name)",
                ])
            precondition(r.status == 0, r.stderr)
        }
        try! "not a video".write(toFile: "\(sources)/notes.txt", atomically: true, encoding: .utf8)
        let r = try! run(
            "\(repositoryRoot)/scripts/data/make_camera_motion_dataset.sh",
            [sources, "\(folder)/dataset", "--train", "1", "--val", "1", "--seed", "3"])
        precondition(r.status == 0, r.stderr)
        #expect(r.stdout.contains("wrote 12 videos of 6 classes from 1 sources"))
        return "\(folder)/dataset"
    }()

    /// Gray levels of every frame.
    static func frames(_ path: String) throws -> (count: Int, width: Int, height: Int, gray: [[Float]]) {
        let frames = try VideoReader(path: path).frames(at: Array(0..<50))
        let gray = (0..<frames.count).map { i -> [Float] in
            let rgb = Array(frames.frame(i))
            return (0..<(frames.width * frames.height)).map { p -> Float in
                let (r, g, b) = (Float(rgb[3 * p]), Float(rgb[3 * p + 1]), Float(rgb[3 * p + 2]))
                return (r + g + b) / 3
            }
        }
        return (frames.count, frames.width, frames.height, gray)
    }

    /// The shift (dx, dy) for which frame b at (x, y) looks most like frame a at (x + dx, y + dy),
    /// over the middle of the picture.
    static func shift(_ a: [Float], _ b: [Float], width: Int, height: Int) -> (dx: Int, dy: Int) {
        let reach = 24
        var best = (dx: 0, dy: 0, difference: Float.infinity)
        for dy in -reach...reach {
            for dx in -reach...reach {
                var sum: Float = 0
                for y in reach..<(height - reach) {
                    for x in reach..<(width - reach) { sum += abs(b[y * width + x] - a[(y + dy) * width + x + dx]) }
                }
                if sum < best.difference { best = (dx, dy, sum) }
            }
        }
        return (best.dx, best.dy)
    }

    /// The mean squared difference between neighbouring pixels: a picture enlarged has less.
    static func detail(_ f: [Float], width: Int) -> Float {
        var sum: Float = 0
        for i in 0..<(f.count - 1) where (i + 1) % width != 0 { sum += (f[i + 1] - f[i]) * (f[i + 1] - f[i]) }
        return sum / Float(f.count)
    }

    @Test func everyVideoMovesAsItsLabelSays() throws {
        for split in ["train", "val"] {
            let videos = try Annotations.load(
                format: .kineticsCSV, annotations: "\(Self.dataset)/\(split).csv", root: Self.dataset,
                classes: "\(Self.dataset)/classes.txt")
            #expect(videos.classes.count == 6 && videos.entries.count == 6 && videos.missing.isEmpty, "\(split)")
            for video in videos.entries {
                let label = videos.classes[video.label]
                let (count, width, height, gray) = try Self.frames(video.path)
                #expect(count == 50 && width == 160 && height == 120, "\(label): \(count) frames of \(width)x\(height)")
                let (dx, dy) = Self.shift(gray[5], gray[20], width: width, height: height)
                let change = Self.detail(gray[45], width: width) / Self.detail(gray[4], width: width)
                let moved: Bool =
                    switch label {
                    case "panning right": dx >= 5 && abs(dy) <= 1
                    case "panning left": dx <= -5 && abs(dy) <= 1
                    case "panning down": dy >= 5 && abs(dx) <= 1
                    case "panning up": dy <= -5 && abs(dx) <= 1
                    case "zooming in": abs(dx) <= 2 && abs(dy) <= 2 && change < 0.8
                    case "zooming out": abs(dx) <= 2 && abs(dy) <= 2 && change > 1.25
                    default: false
                    }
                #expect(moved, "\(split) \(label): shift \(dx), \(dy); detail x\(change)")
            }
        }
    }
}
