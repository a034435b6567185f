import Foundation
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLDistributed
import NLLayers
import NLTensor
import NLVideo

struct NLVideoCLITests {
    @Test func probePrintsJSONLinesAndExits65OnABrokenFile() throws {
        let good = "\(testVideoDirectory)/rotated_90.mp4", bad = "\(testVideoDirectory)/text.mp4"
        let r = try run("nlvideo", ["probe", good, bad])
        #expect(r.status == 65)
        let lines = r.stdout.split(separator: "\n").map {
            try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        #expect(
            lines[0]["frames"] as? Int == 50 && lines[0]["rotation"] as? Int == 270
                && lines[0]["codec"] as? String == "h264")
        #expect(
            lines[0]["width"] as? Int == 96 && lines[0]["fps"] as? Double == 25 && lines[0]["duration"] as? Double == 2)
        #expect(lines[1]["path"] as? String == bad && (lines[1]["error"] as? String)?.isEmpty == false)
    }

    @Test func framesInTheOrderAskedAsSafetensorsOrPNG() throws {
        let dir = scratchDirectory("files", made: true), video = "\(testVideoDirectory)/vp9.webm"
        let r = try run(
            "nlvideo",
            ["frames", video, "--indices", "9,0,9", "--short-side", "32", "--output", "\(dir)/f.safetensors"])
        #expect(r.status == 0, "\(r.stderr)")
        let frames = try SafeTensors(contentsOf: "\(dir)/f.safetensors")
        #expect(frames.entries["frames"]?.shape == [3, 32, 48, 3] && frames.entries["frames"]?.dtype == .u8)
        let bytes = frames.uint8s("frames")!, size = 32 * 48 * 3
        #expect(bytes[0..<size] == bytes[(2 * size)..<(3 * size)] && bytes[0..<size] != bytes[size..<(2 * size)])
        #expect(try run("nlvideo", ["frames", video, "--indices", "1,2", "--png", "\(dir)/png"]).status == 0)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: "\(dir)/png").sorted() == [
                "frame_0_1.png", "frame_1_2.png",
            ])
        #expect(
            try run("nlvideo", ["frames", video, "--indices", "50", "--output", "\(dir)/x.safetensors"]).status == 64)
        // A negative index is a value out of range, not an option ArgumentParser finds missing.
        let negative = try run("nlvideo", ["frames", video, "--indices", "-1", "--output", "\(dir)/x.safetensors"])
        #expect(
            negative.status == 64 && negative.stderr.contains("frame -1 is outside the video's"), "\(negative.stderr)")
        #expect(
            try run(
                "nlvideo",
                ["frames", "\(testVideoDirectory)/empty.mp4", "--indices", "0", "--output", "\(dir)/x.safetensors"]
            ).status == 65)
    }

    @Test func checkReportsBadVideosWithTheirAnnotationLines() throws {
        let dir = scratchDirectory("files", made: true), root = syntheticDatasetDirectory
        let r = try run(
            "nlvideo", ["check", "\(root)/train_with_problems.csv", "--root", root, "--bad-list", "\(dir)/bad.txt"])
        #expect(r.status == 65)
        #expect(
            r.stdout.contains("train_with_problems.csv:20: ")
                && r.stdout.contains("train_with_problems.csv:21: missing"))
        #expect(r.stdout.contains("checked 20 videos: 18 readable, 1 missing, 0 truncated, 1 undecodable"))
        #expect(try String(contentsOfFile: "\(dir)/bad.txt", encoding: .utf8).split(separator: "\n").count == 2)
        let config = "\(dir)/d.cfg"
        try "[data]\nroot = \(root)\ntrain_annotations = \(root)/train.csv\nval_annotations = \(root)/val.csv\n".write(
            toFile: config, atomically: true, encoding: .utf8)
        let clean = try run("nlvideo", ["check", "--config", config, "--every-frame"])
        #expect(
            clean.status == 0
                && clean.stdout.contains("checked 24 videos: 24 readable, 0 missing, 0 truncated, 0 undecodable"),
            "\(clean.stdout)")
    }

    /// No leak: the process's own memory (RssAnon: heap and stacks) is the same after 300 and
    /// after 3,000 open-read-close cycles. Peak RSS also counts the shared libraries' pages, which
    /// wandered by 12-36 MiB between runs in a loaded test run, leak or not.
    @Test func readersFreeWhatTheyAllocate() throws {
        let files = ["h264_bframes.mp4", "vp9.webm", "av1.mkv", "hevc.mp4"].map { "\(testVideoDirectory)/\($0)" }
        func ownMiB(_ clips: Int) throws -> Double {
            let r = try run(
                "nlbench", ["decode"] + files + ["--clips", "\(clips)", "--clip-len", "4", "--short-side", "32"])
            #expect(r.status == 0)
            let words = r.stdout.components(separatedBy: "own memory at the end ").last!.split(separator: " ")
            return Double(words.first ?? "") ?? .nan
        }
        let (few, many) = (try ownMiB(300), try ownMiB(3000))
        #expect(many - few < 2, "the process's own memory grew from \(few) to \(many) MiB")
    }
}
