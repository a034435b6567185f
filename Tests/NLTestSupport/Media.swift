import Foundation
import NLData
import NLLayers
import NLTensor
import NLTrain
import NLVideo

/// The video reader's test files (scripts/data/make_test_videos.sh), made once per test process.
public let testVideoDirectory: String = {
    let dir = scratchDirectory("test-videos")
    runScript("data/make_test_videos.sh", [dir])
    return dir
}()

/// A small synthetic dataset (scripts/data/make_synthetic_dataset.sh: 6 classes, 3 training and 1
/// validation video each, 2 s), made once per test process, with a broken video and a missing
/// one listed in a copy of the training annotations, train_with_problems.csv (lines 20 and 21).
public let syntheticDatasetDirectory: String = {
    let dir = scratchDirectory("synthetic")
    runScript("data/make_synthetic_dataset.sh", [dir, "--train", "3", "--val", "1", "--seconds", "2"])
    try! Data((0..<4000).map { UInt8(truncatingIfNeeded: $0 &* 7919) }).write(
        to: URL(fileURLWithPath: "\(dir)/train/moving up/BROKENVIDEO_000001_000011.mp4"))
    let csv = try! String(contentsOfFile: "\(dir)/train.csv", encoding: .utf8)
    try! (csv + "moving up,BROKENVIDEO,1,11,train\nmoving up,MISSINGVIDE,1,11,train\n").write(
        toFile: "\(dir)/train_with_problems.csv", atomically: true, encoding: .utf8)
    return dir
}()
