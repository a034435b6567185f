import Foundation
import NLTestSupport
import Testing
import NLData
import NLLayers
import NLModels
import NLTensor
import NLTrain
import NLVideo

/// Every command's `--help`, as a user reads it, pinned: a change of an option, a default or the
/// words shows here as a difference to review. NL_UPDATE_DOCS=1 writes the new text into
/// Tests/CLITests/Help/ (then review the diff, as for any other file).
struct HelpTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Help").path
    static let commands = [
        "nltrain", "nleval", "nlpredict", "nlmodel", "nlmodel summary", "nlmodel forward", "nlmodel inflate",
        "nlmodel convert", "nlvideo",
        "nlvideo probe",
        "nlvideo frames", "nlvideo check", "nlbench", "nlbench step", "nlbench decode", "nlbench loader",
        "nlbench pipeline",
        "nlbench verify",
    ]

    @Test(arguments: commands)
    func helpIsAsPinned(_ command: String) throws {
        let words = command.split(separator: " ").map(String.init)
        let r = try run(words[0], Array(words.dropFirst()) + ["--help"], environment: ["COLUMNS": "100"])
        #expect(r.status == 0, "\(r.stderr)")
        let file = "\(Self.folder)/\(words.joined(separator: "-")).txt"
        if ProcessInfo.processInfo.environment["NL_UPDATE_DOCS"] == "1" {
            try r.stdout.write(toFile: file, atomically: true, encoding: .utf8)
            return
        }
        let pinned = (try? String(contentsOfFile: file, encoding: .utf8)) ?? "(no snapshot at \(file))"
        #expect(r.stdout == pinned, "\(command) --help differs from \(file); NL_UPDATE_DOCS=1 rewrites it")
    }
}
