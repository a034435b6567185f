import Foundation
import NLTensor
import NLVideo
import Testing

struct VideoReaderTests {
    static let names = TestVideos.manifest.map(\.name)

    /// The frame count comes from the packet index and every frame equals the ffmpeg CLI's:
    /// H.264 (B-frames, open GOP, 10-bit), HEVC, VP8, VP9, AV1, MPEG-4 part 2, MPEG-2, MJPEG, FFV1
    /// in mp4, mov, mkv, webm, avi, MPEG-TS and MPEG-PS; files cut where no keyframe is (the frames
    /// before the first keyframe are dropped, as ffmpeg drops them); variable frame rate, display
    /// rotation, odd sizes, BT.709, BT.2020 and full range (which swscale alone converts as BT.601,
    /// limited: up to 54 levels off), audio beside.
    @Test(arguments: names)
    func everyFrameEqualsTheFFmpegCLI(_ name: String) throws {
        let reader = try VideoReader(path: TestVideos.path(name))
        #expect(reader.info.frames == TestVideos.manifest.first { $0.name == name }!.frames)
        #expect(reader.info.truncation == nil, "\(name): \(reader.info.truncation ?? "")")
        let frames = try reader.frames(at: Array(0..<reader.info.frames))
        let difference = firstDifference(
            frames.pixels, TestVideos.ffmpegFrames(name), frameBytes: frames.width * frames.height * 3)
        #expect(difference == nil, "\(name): \(difference ?? "")")
    }

    /// Random access, in any order with repeats, on one reader that goes on or seeks as needed,
    /// gives bit for bit the frames of one sequential pass; so does multi-threaded decoding. Also
    /// in MPEG-TS and MPEG-PS, whose demuxers seek by decoding time: a seek by presentation time
    /// landed after the keyframe, and the first keyframe's frames did not decode at all; and in
    /// files cut where no keyframe is, whose frames before the first keyframe are not frames.
    @Test(arguments: [
        "h264_bframes.mp4", "h264_open_gop.mkv", "hevc.mp4", "vp8.webm", "vp9.webm", "av1.mkv",
        "mpeg4_bframes.avi", "vfr.mkv", "rotated_90.mp4", "long.mp4", "long.mkv", "h264_bframes.ts",
        "mpeg2_bframes.mpg",
        "h264_cut_mid_gop.mkv", "h264_cut_mid_gop.ts",
    ])
    func randomAccessEqualsSequentialDecoding(_ name: String) throws {
        let sequential = try VideoReader(path: TestVideos.path(name))
        let all = try sequential.frames(at: Array(0..<sequential.info.frames))
        let frameBytes = all.height * all.width * 3
        var generator = SeededGenerator(seed: 41)
        for threads in [1, 0, 3] {
            let reader = try VideoReader(path: TestVideos.path(name), threads: threads)
            let n = reader.info.frames
            var requests: [[Int]] = [[n - 1], [0], [n / 2, n / 2 + 1], [n - 1, 0, n / 3, 0]]
            for _ in 0..<8 {
                let start = generator.below(n), count = generator.below(12) + 1
                var indices: [Int] = []
                for _ in 0..<count { indices.append(min(n - 1, start + generator.below(20))) }
                requests.append(indices)
            }
            requests.append(Array(stride(from: 3, to: n, by: 2)))  // the training pattern: every other frame
            for indices in requests {
                let frames = try reader.frames(at: indices)
                for (k, i) in indices.enumerated() {
                    let same = frames.frame(k).elementsEqual(all.pixels[(i * frameBytes)..<((i + 1) * frameBytes)])
                    #expect(same, "\(name) threads \(threads) frame \(i) of \(indices)")
                }
            }
        }
    }

    /// Scaling happens inside swscale, straight to the target size: frames equal ffmpeg's scale
    /// filter with the same interpolation (for 8-bit 4:2:0 video, scaled in YUV then converted,
    /// as "scale,format=yuv420p"), rotation included.
    @Test(arguments: [
        ("h264_bframes.mp4", Interpolation.bilinear), ("vp9.webm", .bicubic), ("rotated_90.mp4", .area),
        ("odd_size.mp4", .bilinear),
        ("h264_bt709.mp4", .bilinear), ("vp9_bt709_full_range.webm", .area), ("hevc_bt2020_10bit.mkv", .bicubic),
    ])
    func scaledFramesEqualFFmpegScale(_ name: String, _ interpolation: Interpolation) throws {
        let reader = try VideoReader(path: TestVideos.path(name))
        let frames = try reader.frames(
            at: Array(0..<reader.info.frames), size: .shortSide(40), interpolation: interpolation)
        let shown = reader.info.displaySize
        #expect(min(frames.width, frames.height) == 40)
        #expect(frames.width == Int(Double(shown.width) * 40 / Double(min(shown.width, shown.height)) + 0.5))
        // The reader scales the stored picture, then turns it (fewer pixels to turn); ffmpeg's
        // autorotate turns first, which rounds differently: compare with ffmpeg doing it our way.
        let rotation = reader.info.rotation
        let (scaledWidth, scaledHeight) =
            rotation % 180 == 0 ? (frames.width, frames.height) : (frames.height, frames.width)
        let turn = [0: "", 90: ",transpose=clock", 180: ",hflip,vflip", 270: ",transpose=cclock"][rotation]!
        let scale = "scale=\(scaledWidth):\(scaledHeight):flags=\(interpolation.rawValue)"
        let filter = (reader.info.pixelFormat == "yuv420p" ? "\(scale),format=yuv420p,\(scale)" : scale) + turn
        let ffmpeg = TestVideos.ffmpegFrames(name, filter: filter, autorotate: false)
        let difference = firstDifference(frames.pixels, ffmpeg, frameBytes: frames.width * frames.height * 3)
        #expect(difference == nil, "\(name): \(difference ?? "")")
        let exact = try reader.frames(at: [3, 1], size: .exactly(width: 50, height: 30))
        #expect(exact.width == 50 && exact.height == 30 && exact.count == 2)
    }

    @Test func metadata() throws {
        let vfr = try VideoReader(path: TestVideos.path("vfr.mkv")).info
        #expect(vfr.frames == 60 && abs(vfr.duration - 2.96) < 1e-6 && abs(vfr.fps - 59 / 2.92) < 1e-6)
        #expect(zip(vfr.timestamps, vfr.timestamps.dropFirst()).allSatisfy { $1 > $0 })
        #expect(Set(zip(vfr.timestamps.dropFirst(), vfr.timestamps).map { (($0 - $1) * 1000).rounded() }) == [40, 80])
        #expect(try VideoReader(path: TestVideos.path("h264_10bit.mp4")).info.pixelFormat == "yuv420p10le")
        let h264 = try VideoReader(path: TestVideos.path("h264_bframes.mp4")).info
        #expect(h264.pixelFormat == "yuv420p")
        #expect(
            h264.codec == "h264" && h264.width == 96 && h264.height == 64 && h264.fps == 25 && h264.duration == 2
                && h264.rotation == 0)
        // In MPEG's 1/90000 time base too, 25 fps is 25, not 24.999999999999996.
        for name in ["h264_bframes.ts", "mpeg2_bframes.mpg"] {
            #expect(try VideoReader(path: TestVideos.path(name)).info.fps == 25, "\(name)")
        }
        #expect(try VideoReader(path: TestVideos.path("rotated_90.mp4")).info.rotation == 270)
        #expect(try VideoReader(path: TestVideos.path("rotated_270.mp4")).info.rotation == 90)
        let rotated = try VideoReader(path: TestVideos.path("rotated_90.mp4"))
        let upright = try rotated.frames(at: [0]), stored = try rotated.frames(at: [0], rotate: false)
        #expect(upright.width == 64 && upright.height == 96 && stored.width == 96 && stored.height == 64)
        for (name, codec) in [
            ("hevc.mp4", "hevc"), ("vp8.webm", "vp8"), ("vp9.webm", "vp9"), ("av1.mkv", "av1"),
            ("mpeg4_bframes.avi", "mpeg4"), ("mjpeg.avi", "mjpeg"), ("ffv1.mkv", "ffv1"),
        ] {
            #expect(try VideoReader(path: TestVideos.path(name)).info.codec == codec)
        }
    }

    @Test func brokenFilesGiveTheRightError() {
        let cases: [(String, VideoError.Kind)] = [
            ("missing.mp4", .missingFile), ("empty.mp4", .notMedia), ("random_bytes.mp4", .notMedia),
            ("text.mp4", .notMedia), ("header_only.mp4", .notMedia), ("audio_only.m4a", .noVideoStream),
            ("still.jpg", .notVideo), ("raw.h264", .notVideo),
        ]
        for (name, kind) in cases {
            do {
                _ = try VideoReader(path: TestVideos.path(name))
                Issue.record("\(name) opened")
            } catch {
                #expect(error.kind == kind, "\(name): \(error)")
                #expect(error.description.hasPrefix(TestVideos.path(name)), "the error names the file")
            }
        }
    }

    /// What a still picture and a raw stream are, said plainly.
    @Test func stillsAndRawStreamsSayWhatTheyAre() {
        for (name, words) in [
            ("still.jpg", "a still image (mjpeg), not a video"),
            ("raw.h264", "a raw h264 stream (raw H.264 video) without a container"),
        ] {
            do { _ = try VideoReader(path: TestVideos.path(name)); Issue.record("\(name) opened") } catch {
                #expect(error.message.hasPrefix(words), "\(error)")
            }
        }
    }

    /// A truncated file (its index or header promising more than is there) says so, with how
    /// many frames are there, and keeps the frames before the damage, bit for bit as the intact
    /// file's; asking beyond them is an error that says which frames decode.
    @Test(arguments: [
        "10.mp4", "30.mp4", "60.mp4", "90.mp4", "10.mkv", "30.mkv", "60.mkv", "90.mkv", "10.webm", "30.webm", "60.webm",
        "90.webm",
    ])
    func truncatedFilesKeepTheFramesBeforeTheDamage(_ cut: String) throws {
        let name = "truncated_" + cut
        let intact = try VideoReader(path: TestVideos.path("long." + cut.split(separator: ".")[1]))
        let reader = try VideoReader(path: TestVideos.path(name))
        let n = reader.info.frames
        #expect(n > 0 && n < intact.info.frames)
        let truncation = reader.info.truncation ?? ""
        #expect(
            truncation.hasPrefix("truncated: \(n) of ") && truncation.contains("250 frames are there"),
            "\(name): \(truncation)")
        // The frames there: up to the first gap (a B-frame cut off while the frame after it stayed).
        var lastGood = zip(reader.info.timestamps, intact.info.timestamps).prefix { $0 == $1 }.count - 1
        #expect(lastGood >= n - 4)
        do { _ = try reader.frames(at: Array(0...lastGood)) } catch {
            guard case .damaged(let good) = error.kind else { Issue.record("\(error)"); return }
            #expect(good >= n - 3, "\(error)")
            lastGood = good
        }
        let frames = try reader.frames(at: Array(0...lastGood))
        let difference = firstDifference(
            frames.pixels, try intact.frames(at: Array(0...lastGood)).pixels,
            frameBytes: frames.width * frames.height * 3)
        #expect(difference == nil, "\(name): \(difference ?? "")")
        #expect(throws: VideoError.self) { try reader.frames(at: [n]) }
        do { _ = try reader.frames(at: [intact.info.frames - 1]) } catch {
            #expect(error.kind == .invalidRequest && error.message.contains("\(n) frames"))
        }
    }

    /// Consecutive chunks on one reader (as nlvideo check --every-frame reads) equal one pass:
    /// going on after a chunk must not lose the frames skipped while reading it.
    @Test(arguments: ["long.mp4", "long.mkv", "h264_bframes.mp4", "hevc.mp4"])
    func consecutiveChunksEqualOnePass(_ name: String) throws {
        let all = try VideoReader(path: TestVideos.path(name)).frames(
            at: Array(0..<TestVideos.manifest.first { $0.name == name }!.frames))
        let reader = try VideoReader(path: TestVideos.path(name))
        var chunks: [UInt8] = []
        for start in stride(from: 0, to: reader.info.frames, by: 16) {
            chunks += try reader.frames(at: Array(start..<min(reader.info.frames, start + 16))).pixels
        }
        #expect(firstDifference(chunks, all.pixels, frameBytes: all.width * all.height * 3) == nil)
    }

    @Test func badRequests() throws {
        let reader = try VideoReader(path: TestVideos.path("vp9.webm"))
        #expect(throws: VideoError.self) { try reader.frames(at: [-1]) }
        #expect(throws: VideoError.self) { try reader.frames(at: [50]) }
        #expect(throws: VideoError.self) { try reader.frames(at: [1], size: .shortSide(0)) }
        #expect(try reader.frames(at: []).count == 0)
    }

    @Test func pngFilesDecodeBackToTheFrame() throws {
        let frames = try VideoReader(path: TestVideos.path("odd_size.mp4")).frames(at: [7])
        let png = try PNG.encode(rgb: frames.frame(0), width: frames.width, height: frames.height)
        let path = "\(TestVideos.directory)/frame.png"
        try png.write(to: URL(fileURLWithPath: path))
        // Read back by FFmpeg's own PNG decoder.
        #expect(firstDifference(TestVideos.ffmpegFrames("frame.png"), frames.pixels, frameBytes: 1) == nil)
    }
}
