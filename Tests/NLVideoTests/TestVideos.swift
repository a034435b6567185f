import Foundation
import NLTestSupport
import NLVideo

/// The test videos, made once per test run by scripts/data/make_test_videos.sh with the ffmpeg CLI.
enum TestVideos {
    static var directory: String { testVideoDirectory }

    /// (file, frames) of every good video.
    static let manifest: [(name: String, frames: Int)] = {
        let text = try! String(contentsOfFile: "\(directory)/MANIFEST", encoding: .utf8)
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map {
            let parts = $0.split(separator: " ")
            return (String(parts[0]), Int(parts[1])!)
        }
    }()

    static func path(_ name: String) -> String { "\(directory)/\(name)" }

    /// All frames of `name` as the ffmpeg CLI gives them: rgb24, autorotated (unless told not
    /// to), every frame once, optionally through a filter.
    static func ffmpegFrames(_ name: String, filter: String? = nil, autorotate: Bool = true) -> [UInt8] {
        var arguments = ["-v", "error", "-nostdin"] + (autorotate ? [] : ["-noautorotate"])
        arguments += ["-i", path(name), "-map", "0:v:0", "-fps_mode", "passthrough"]
        if let filter { arguments += ["-vf", filter] }
        return Array(
            try! run("/usr/bin/env", ["ffmpeg"] + arguments + ["-pix_fmt", "rgb24", "-f", "rawvideo", "-"]).output)
    }
}

/// Where two frame buffers first differ, as "frame k" (nil when equal). Comparing large arrays
/// inside #expect would make the test library diff them element by element.
func firstDifference(_ a: [UInt8], _ b: [UInt8], frameBytes: Int) -> String? {
    guard a.count == b.count else { return "sizes \(a.count) and \(b.count) differ" }
    guard let i = a.indices.first(where: { a[$0] != b[$0] }) else { return nil }
    return "first difference in frame \(i / max(frameBytes, 1)) (byte \(i))"
}
