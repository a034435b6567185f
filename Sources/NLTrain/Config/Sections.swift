import NLData
import NLKeys
import NLLayers
import NLModels

/// [model]: which network, from a named model whose fields the other keys change.
public struct ModelSection: Sendable {
    @Key(
        "name", "named model whose settings the keys below change: \(ModelSpec.names.joined(separator: ", "))",
        parse: { name in
            guard ModelSpec.names.contains(name) else {
                throw ValueProblem(message: "no model '\(name)'; models: \(ModelSpec.names.joined(separator: ", "))")
            }
            return name
        }, show: { $0 })
    public var name = "nl_i3d_r50"
    public var spec = ModelSpec.named("nl_i3d_r50")!
    @Key(
        "pretrained",
        "weights to start from: a checkpoint, `nlmodel inflate` output, a PyTorch .pth or Caffe2 .pkl (empty: initialise as mmaction2)"
    )
    public var pretrained = ""

    public init() {}
}

/// [data]: the dataset, clip sampling and transforms.
public struct DataSection: Sendable {
    @Key(
        "format", "annotations",
        [
            .kineticsCSV: "videos at root/split/label/ or flat at root/split/, as the CVDF download unpacks them",
            .list: "mmaction2 'path label'", .folders: "root/class/video",
        ])
    public var format: AnnotationFormat = .kineticsCSV
    @Key("root", "folder the videos are under")
    public var root = ""
    @Key("train_annotations", "training annotation file (folders: the training folder)")
    public var trainAnnotations = ""
    @Key("val_annotations", "validation annotation file (folders: the validation folder); empty: no validation")
    public var valAnnotations = ""
    @Key("classes", "file of class names, one a line (empty: sorted labels of the training annotations)")
    public var classes = ""
    @Key("clip_len", in: 1...1024, "frames per clip")
    public var clipLength = 32
    @Key("frame_interval", in: 1...64, "frames between sampled frames")
    public var frameInterval = 2
    @Key("num_clips", in: 1...64, "clips per video in training")
    public var numClips = 1
    @Key(
        "train_short_side", count: 1...2, in: 16...4096,
        "short side before cropping in training: one value, or a range drawn per clip")
    public var trainShortSide = [256, 320]
    @Key("crop_size", in: 16...4096, "square crop, in training and testing")
    public var cropSize = 224
    @Key(
        "train_crop", "training crop",
        [
            .random: "a crop_size square at a random place; the paper's and PySlowFast's",
            .multiscale: "mmaction2's MultiScaleCrop resized to crop_size; its I3D recipe",
        ])
    public var trainCrop: TrainCrop = .random
    @Key(
        "multiscale_scales", count: 1...8, in: 0.01...1,
        "train_crop = multiscale: crop widths and heights as fractions of the short side (mmaction2's I3D recipe: 1 0.8)"
    )
    public var multiscaleScales = [1, 0.875, 0.75, 0.66]
    @Key(
        "multiscale_max_wh_gap", in: 0...8,
        "train_crop = multiscale: how many scale steps width and height may differ (0: square crops)")
    public var multiscaleMaxWHGap = 1
    @Key("test_short_side", in: 16...4096, "short side before cropping in testing")
    public var testShortSide = 256
    @Key("test_crop", "testing crops", [.center: "one", .three: "left, centre, right"])
    public var testCrop: TestCrop = .center
    @Key(
        "test_crop_size", in: 0...4096,
        "crop size in testing (0: crop_size); mmaction2 and PySlowFast test three crops of 256")
    public var testCropSize = 0
    @Key("flip", "random horizontal flip with probability 0.5 in training")
    public var flip = true
    @Key("mean", count: 3...3, in: -1000...1000, "per-channel mean subtracted (RGB, 0-255 scale)")
    public var mean = [123.675, 116.28, 103.53]
    @Key("std", count: 3...3, in: 0.001...1000, "per-channel standard deviation divided by")
    public var std = [58.395, 57.12, 57.375]
    @Key("workers", in: 0...256, "decoding threads of the loader (0: on the training thread)")
    public var workers = 2
    @Key(
        "read_timeout", in: 0...86_400,
        "seconds a worker may take on one video before it counts as broken (a read a hung network or FUSE mount stalls; 0: no limit)"
    )
    public var readTimeout = 120.0

    public init() {}
}

/// How much each class counts in the loss ([train] class_weights).
public enum ClassWeights: Sendable, Equatable {
    case uniform
    /// Inverse to the class's share of the training set: videos / (classes x the class's videos),
    /// as scikit-learn's class_weight="balanced".
    case balanced
    case given([Double])

    /// One weight per class for a training set of `counts` videos per class (empty: all 1).
    public func weights(counts: [Int]) -> [Float] {
        switch self {
        case .uniform: return []
        case .given(let values): return values.map(Float.init)
        case .balanced:
            let total = Double(counts.reduce(0, +)), present = Double(counts.filter { $0 > 0 }.count)
            return counts.map { $0 > 0 ? Float(total / (present * Double($0))) : 0 }
        }
    }

    /// Empty, balanced, or one number per class.
    @Sendable static func parse(_ text: String) throws -> ClassWeights {
        if text.isEmpty { return .uniform }
        if text == "balanced" { return .balanced }
        if text.split(whereSeparator: \.isWhitespace).contains("balanced") {
            throw ValueProblem(message: "balanced stands alone; give balanced, or one number per class")
        }
        return .given(try words(text, count: 1...100_000).map { try parseDouble($0, in: 0...1e6) })
    }

    /// As config text, read back by `parse`.
    var text: String {
        switch self {
        case .uniform: ""
        case .balanced: "balanced"
        case .given(let values): values.map(format).joined(separator: " ")
        }
    }
}

/// The optimizers ([train] optimizer).
public enum OptimizerKind: String, CaseIterable, Sendable { case sgd, adamw }

/// The order of a training epoch's videos ([train] sampler).
public enum Sampler: String, CaseIterable, Sendable { case shuffle, class_balanced }

/// [train]: optimisation, schedule, logging and checkpoints.
public struct TrainSection: Sendable {
    @Key("work_dir", "folder of checkpoints, logs and metrics; a run there resumes by itself")
    public var workDir = ""
    @Key("seed", in: 0...Int(Int32.max), "seed of initialisation, shuffling, sampling and dropout")
    public var seed = 0
    /// `autoBatchSize` until nltrain measures what fits (Trainer.resolveBatchSize).
    @Key(
        "batch_size",
        "clips the model takes at once (per process): a micro-batch when accumulate > 1; auto: the "
            + "largest that fits in 90% of the memory available, measured at the start (at most 64, "
            + "the published recipes' batch; a resumed run keeps its checkpoint's)",
        parse: { text in
            if text == "auto" { return TrainSection.autoBatchSize }
            guard Int(text) != nil else {
                throw ValueProblem(message: "expected auto or a whole number, got '\(text)'")
            }
            return try parseInt(text, in: 1...4096)
        }, show: { $0 == TrainSection.autoBatchSize ? "auto" : "\($0)" })
    public var batchSize = 8
    public static let autoBatchSize = 0
    @Key(
        "accumulate", in: 1...1024,
        "micro-batches whose gradients are summed before each optimizer step: an iteration takes "
            + "batch_size x accumulate clips per process (BatchNorm sees each micro-batch)")
    public var accumulate = 1
    @Key(
        "label_smoothing", in: 0...0.999,
        "targets become (1 - this) x the label + this / classes (mmaction2's label_smooth_eps, "
            + "default 0; PySlowFast's MIXUP.LABEL_SMOOTH_VALUE, 0.1 with mixup)")
    public var labelSmoothing = 0.0
    public var mixing = Mixing()
    @Key(
        "class_weights",
        "weight of each class in the loss: empty (all 1), one number per class, or balanced "
            + "(videos / (classes x the class's videos))", parse: ClassWeights.parse, show: \.text)
    public var classWeights: ClassWeights = .uniform
    @Key(
        "sampler", "order of a training epoch's videos",
        [
            .shuffle: "each video once, shuffled",
            .class_balanced: "as many draws, each class equally likely (with replacement)",
        ])
    public var sampler: Sampler = .shuffle
    @Key("epochs", in: 1...100_000, "epochs to train")
    public var epochs = 100
    @Key("lr", in: 0...100, "base learning rate")
    public var lr = 0.01
    @Key("optimizer", "the update", [.sgd: "with momentum, as torch.optim.SGD", .adamw: "as torch.optim.AdamW"])
    public var optimizer: OptimizerKind = .sgd
    @Key("momentum", in: 0...0.999999, "SGD momentum")
    public var momentum = 0.9
    @Key("nesterov", "SGD: Nesterov momentum")
    public var nesterov = false
    @Key(
        "betas", count: 2...2, in: 0...0.999999,
        "AdamW: decay rates of the moment estimates (torch's default 0.9 0.999)")
    public var betas = [0.9, 0.999]
    @Key("eps", in: 0...1, "AdamW: added to the denominator (torch's default 1e-8)")
    public var eps = 1e-8
    @Key(
        "weight_decay", in: 0...1,
        "weight decay: SGD's L2 term in the gradient; AdamW's decoupled decay (torch's default there 0.01)")
    public var weightDecay = 1e-4
    @Key("decay_norm_and_bias", "apply weight decay to normalisation weights and biases too")
    public var decayNormAndBias = true
    @Key(
        "warmup", "learning-rate warmup",
        [.linear: "from lr * warmup_start_factor up to lr", .constant: "lr * warmup_start_factor"])
    public var warmup: WarmupKind = .linear
    @Key("warmup_epochs", in: 0...100_000, "warmup length in epochs (fractions allowed)")
    public var warmupEpochs = 1.0
    @Key(
        "warmup_iterations", in: 0...100_000_000, "warmup length in iterations; when above 0 it replaces warmup_epochs")
    public var warmupIterations = 0
    @Key("warmup_start_factor", in: 0...1, "warmup starts at lr times this")
    public var warmupStartFactor = 0.1
    @Key("lr_policy", "after warmup", [.step: "times lr_gamma at each of lr_steps", .cosine: "down to lr_min"])
    public var lrPolicy: LRPolicy = .step
    @Key(
        "lr_steps", count: 0...64, in: 0...100_000,
        "epochs at which step decay multiplies the learning rate by lr_gamma"
    )
    public var lrSteps = [40, 80]
    @Key("lr_gamma", in: 0...1, "step decay factor")
    public var lrGamma = 0.1
    @Key("lr_min", in: 0...100, "cosine: the final learning rate")
    public var lrMin = 0.0
    @Key("grad_clip", in: 0...1e9, "clip gradients to this global L2 norm (0: off)")
    public var gradClip = 40.0
    @Key("log_every", in: 1...1_000_000, "iterations between log lines")
    public var logEvery = 20
    @Key("eval_every", in: 0...100_000, "epochs between validations (0: never)")
    public var evalEvery = 5
    @Key("checkpoint_every", in: 0...100_000, "epochs between checkpoints (0: only the last)")
    public var checkpointEvery = 1
    @Key("checkpoint_every_iterations", in: 0...100_000_000, "also a checkpoint every this many iterations (0: off)")
    public var checkpointEveryIterations = 0
    @Key("keep_checkpoints", in: 1...100_000, "periodic checkpoints kept (the best one is kept besides)")
    public var keepCheckpoints = 5
    @Key(
        "precise_bn_batches", in: 0...100_000,
        "batches to recompute BatchNorm statistics over before validation (0: off)")
    public var preciseBNBatches = 0
    @Key("max_bad_fraction", in: 0...1, "stop (exit 65) when more than this fraction of videos fail to decode")
    public var maxBadFraction = 0.05
    @Key(
        "tensorboard",
        "write TensorBoard event files into WORK_DIR, a run named after it (tensorboard --logdir work_dirs)")
    public var tensorboard = true
    @Key(
        "precision", "arithmetic of the convolutions in training and validation (docs/training.md)",
        [
            .fp32: "float32 throughout",
            .bf16: "mixed precision: convolutions on bfloat16 inputs with float32 accumulation, their "
                + "outputs to BatchNorm in bfloat16; weights and the rest float32; needs AVX512_BF16 or AMX",
        ])
    public var precision: Precision = .fp32
    @Key(
        "sync_bn",
        "under mpirun: BatchNorm statistics over every process's batch (false: each process's own, PySlowFast's default)"
    )
    public var syncBN = false

    public init() {}
}

/// [eval]: validation and nleval.
public struct EvalSection: Sendable {
    @Key("batch_size", in: 1...4096, "clips per batch in validation and nleval")
    public var batchSize = 8
    @Key("num_clips", in: 1...64, "clips per video in validation and nleval (views = num_clips x crops)")
    public var numClips = 1

    public init() {}
}
