import Foundation
import NLData

/// A small synthetic dataset (scripts/make_synthetic_dataset.sh), made once per test run, plus a
/// broken video and a missing one listed in an extra annotation file.
enum SyntheticData {
    static let root: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nl-synthetic-\(getpid())").path
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../scripts/make_synthetic_dataset.sh").standardized.path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: script)
        process.arguments = [dir, "--train", "3", "--val", "1", "--seconds", "2"]
        process.standardOutput = FileHandle.nullDevice
        try! process.run()
        process.waitUntilExit()
        precondition(process.terminationStatus == 0, "\(script) failed")
        // A broken video and a missing one, in a copy of the training list.
        try! Data((0..<4000).map { UInt8(truncatingIfNeeded: $0 &* 7919) }).write(to: URL(fileURLWithPath: "\(dir)/train/moving up/BROKENVIDEO_000001_000011.mp4"))
        let csv = try! String(contentsOfFile: "\(dir)/train.csv", encoding: .utf8)
        try! (csv + "moving up,BROKENVIDEO,1,11,train\nmoving up,MISSINGVIDE,1,11,train\n").write(toFile: "\(dir)/train_with_problems.csv", atomically: true, encoding: .utf8)
        return dir
    }()

    static func dataset(_ annotations: String = "train.csv") throws -> Dataset {
        try Annotations.load(format: .kineticsCSV, annotations: "\(root)/\(annotations)", root: root, classes: "\(root)/classes.txt")
    }

    static let pipeline = ClipPipeline(resize: ShortEdgeResize(range: 56...72), crop: .random(RandomCrop(size: 48)),
                                       flip: RandomHorizontalFlip(), normalize: Normalize(mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375]))
}
