import Foundation
import NLData
import NLLayers
import NLModels
import NLTensor
import NLTrain
import NLVideo

/// A tiny run on the small synthetic dataset: 18 training videos, batches of 4, so 4 iterations
/// an epoch; dropout, flips, scale jitter, validation and precise BN all on, so that every piece
/// of state a resume must restore is exercised.
public func tinyRunConfig(workDirectory: String, epochs: Int = 2, extra: String = "") -> String {
    let data = syntheticDatasetDirectory
    let path = "\(workDirectory).cfg"
    try! """
    [model]
    name = nl_i3d_r18_small
    base_channels = 4
    num_classes = 6
    dropout = 0.5
    [data]
    root = \(data)
    train_annotations = \(data)/train.csv
    val_annotations = \(data)/val.csv
    classes = \(data)/classes.txt
    clip_len = 4
    frame_interval = 2
    train_short_side = 32 40
    crop_size = 32
    test_short_side = 32
    workers = 2
    [train]
    work_dir = \(workDirectory)
    batch_size = 4
    epochs = \(epochs)
    lr = 0.05
    warmup_epochs = 0.5
    lr_steps = 1
    eval_every = 1
    precise_bn_batches = 2
    checkpoint_every = 1
    keep_checkpoints = 2
    log_every = 1
    [eval]
    batch_size = 4
    \(extra)
    """.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// The folder under the temporary directory that holds every scratch path of this test process,
/// removed when the process exits: a suite run writes about 300 MB of videos, runs and
/// checkpoints, which would otherwise pile up with every run.
private let scratchRoot: String = {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("nl-tests-\(getpid())").path
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(atPath: scratchRoot) }
    return path
}()

/// A new path under `scratchRoot`, named after `name`: made as an empty folder with `made`, else
/// left for the command under test to make (a work directory). The one scratch helper of the
/// tests.
public func scratchDirectory(_ name: String, made: Bool = false) -> String {
    let path = "\(scratchRoot)/\(name)-\(UUID().uuidString)"
    if made { try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
    return path
}

/// The repository's root folder: the one place the tests find configs, scripts and sources.
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
    .standardized.path

/// A finished one-epoch tiny run (its checkpoint iter_00000004, best.safetensors), made once and
/// shared by the tests that need a checkpoint: they copy what they change.
public let trainedTinyRun: String = {
    let work = scratchDirectory("trained")
    let r = try! run("nltrain", ["--config", tinyRunConfig(workDirectory: work, epochs: 1)])
    precondition(r.status == 0, r.stderr)
    return work
}()
