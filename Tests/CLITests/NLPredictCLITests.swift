import Foundation
import NLTestSupport
import NLTrain
import Testing

/// nlpredict as users run it: videos and folders, text and JSON, windows of a long video and
/// their timeline, videos that cannot be read, and the same scores nleval gives.
struct NLPredictCLITests {
    static let checkpoint = "\(trainedTinyRun)/best.safetensors"
    static let videos = "\(syntheticDatasetDirectory)/val"

    /// The synthetic dataset's validation videos, by class folder.
    static func files() throws -> [String] {
        try FileManager.default.subpathsOfDirectory(atPath: videos).filter { $0.contains(".") && !$0.hasPrefix(".") }
            .sorted()
            .map { "\(videos)/\($0)" }
    }

    /// The same probabilities as nleval --dump, video for video, with the same views: the two see
    /// videos through the same loader and average the same way.
    @Test func agreesWithNlevalsScores() throws {
        let dump = "\(scratchDirectory("predict", made: true))/scores.csv"
        let evaluated = try run("nleval", ["--ckpt", Self.checkpoint, "--views", "2x3", "--dump", dump])
        #expect(evaluated.status == 0, "\(evaluated.stderr)")
        let rows = try String(contentsOfFile: dump, encoding: .utf8).split(separator: "\n").dropFirst()
        let predicted = try run(
            "nlpredict", ["--ckpt", Self.checkpoint, "--views", "2x3", "--json", "--top-k", "6", Self.videos])
        #expect(predicted.status == 0, "\(predicted.stderr)")
        var scores: [String: [String: Double]] = [:]
        for line in predicted.stdout.split(separator: "\n") {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let top = object["top"] as! [[String: Any]]
            scores[object["video"] as! String] = Dictionary(
                uniqueKeysWithValues: top.map { ($0["label"] as! String, $0["score"] as! Double) })
        }
        let classes = try String(contentsOfFile: "\(syntheticDatasetDirectory)/classes.txt", encoding: .utf8).split(
            separator: "\n"
        ).map(String.init)
        #expect(scores.count == rows.count && rows.count == 6)
        for row in rows {
            let fields = row.split(separator: ",").map(String.init)
            let dumped = fields.suffix(classes.count).map { Double($0)! }
            let mine = try #require(scores[fields[0]], "\(fields[0]) not predicted")
            for (c, name) in classes.enumerated() {
                #expect(abs(mine[name]! - dumped[c]) < 1e-5, "\(fields[0]) \(name)")
            }
        }
    }

    /// One line a video, best first, names from the checkpoint (the config's classes file is not
    /// needed, as on another machine); a folder is walked; a file that is not there is named on
    /// standard error, the others printed, and the exit is 65.
    @Test func linesJSONAndFailures() throws {
        let files = try Self.files()
        let text = try run(
            "nlpredict",
            [
                "--ckpt", Self.checkpoint, "--top-k", "3", "--set", "data.classes=/elsewhere/classes.txt", files[0],
                files[1],
            ])
        #expect(text.status == 0, "\(text.stderr)")
        let lines = text.stdout.split(separator: "\n")
        #expect(
            lines.count == 2 && lines[0].hasPrefix("\(files[0]): ") && lines[0].split(separator: ",").count == 3,
            "\(text.stdout)")
        let names = try String(contentsOfFile: "\(syntheticDatasetDirectory)/classes.txt", encoding: .utf8).split(
            separator: "\n")
        #expect(names.contains { lines[0].contains(": \($0) ") }, "class names from the checkpoint: \(lines[0])")

        let missing = "\(Self.videos)/no such video.mp4"
        let partly = try run("nlpredict", ["--ckpt", Self.checkpoint, "--json", missing, "\(Self.videos)/moving left"])
        #expect(
            partly.status == 65 && partly.stderr.contains("nlpredict: \(missing): no such file"), "\(partly.stderr)")
        #expect(partly.stdout.split(separator: "\n").count == files.filter { $0.contains("/moving left/") }.count)
    }

    /// A long video (four of the synthetic ones one after the other, 8 s) in windows: one line a
    /// window with its start and end, and the timeline picture.
    @Test func windowsOfALongVideo() throws {
        let folder = scratchDirectory("predict-long", made: true), long = "\(folder)/long.mp4"
        let parts = try Self.files().prefix(4)  // 2 s each, mp4, mkv and webm
        let inputs = parts.flatMap { ["-i", $0] }
        let filter =
            parts.indices.map { "[\($0):v]scale=160:120,setsar=1,fps=25[v\($0)];" }.joined()
            + parts.indices.map { "[v\($0)]" }.joined() + "concat=n=\(parts.count):v=1[v]"
        let made = try run(
            "/usr/bin/ffmpeg",
            ["-v", "error", "-y"] + inputs + ["-filter_complex", filter, "-map", "[v]", "-c:v", "libx264", long])
        try #require(made.status == 0, "\(made.stderr)")
        let timeline = "\(folder)/timeline.svg"
        let r = try run(
            "nlpredict",
            ["--ckpt", Self.checkpoint, "--window", "2", "--stride", "1", "--json", "--timeline", timeline, long])
        #expect(r.status == 0, "\(r.stderr)")
        let windows = try r.stdout.split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        #expect(windows.map { $0["start"] as! Double } == [0, 1, 2, 3, 4, 5, 6, 7])
        #expect(windows.map { $0["end"] as! Double } == [2, 3, 4, 5, 6, 7, 8, 8])
        let picture = try String(contentsOfFile: timeline, encoding: .utf8)
        #expect(
            picture.hasPrefix("<svg") && picture.contains("long.mp4: the most probable classes over time")
                && picture.contains("seconds"))
        #expect(picture.hasSuffix("</svg>\n") && picture.components(separatedBy: "<rect").count > 8)
    }

    @Test func usageErrors() throws {
        let video = try Self.files()[0]
        for (arguments, words) in [
            (["--stride", "1", video], "--stride goes with --window"),
            (["--window", "0", video], "--window takes a positive"),
            (["--timeline", "x.svg", video], "--timeline draws the windows of --window"),
            (
                ["--window", "1", "--timeline", "\(scratchDirectory("t", made: true))/t.svg", Self.videos],
                "--timeline draws one video's windows"
            ),
            (["--views", "0x3", video], "--views takes CLIPSxCROPS"), ([String](), "give one or more videos"),
        ] {
            let r = try run("nlpredict", ["--ckpt", Self.checkpoint] + arguments)
            #expect(r.status == 64 && r.stderr.contains(words), "\(arguments): \(r.stderr)")
        }
    }
}
