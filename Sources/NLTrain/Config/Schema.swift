import NLData
import NLModels
import NLDistributed
import NLLayers
import NLTensor
import NLVideo

/// Every key of every section: the one place where config names map to fields.
extension Config {
    struct Section {
        let name: String
        let settings: [Setting<Config>]
    }

    static var schema: [Section] {
        [
            Section(
                name: "model",
                settings: [
                    Setting(
                        key: "name",
                        help:
                            "named model whose settings the keys below change: \(ModelSpec.names.joined(separator: ", "))",
                        read: { _, _ in }, show: { $0.model.name }),
                    .int(
                        "depth", \.model.spec.depth, in: 18...152,
                        "ResNet depth: 18, 34 (basic blocks), 50, 101, 152 (bottlenecks)"),
                    .int(
                        "base_channels", \.model.spec.baseChannels, in: 1...1024,
                        "channels of the stem; stage i has base * 2^i (x4 in bottlenecks)"),
                    .int("num_classes", \.model.spec.numClasses, in: 1...100_000, "classes of the classifier"),
                    .float("dropout", \.model.spec.dropout, in: 0...0.99, "dropout before the classifier"),
                    .string(
                        "pretrained", \.model.pretrained,
                        "weights to start from: a checkpoint, `nlmodel inflate` output, a PyTorch .pth or Caffe2 .pkl (empty: initialise as mmaction2)"
                    ),
                    .size3("conv1_kernel", \.model.spec.conv1Kernel, "stem kernel T H W"),
                    .int("conv1_stride_t", \.model.spec.conv1StrideT, in: 1...8, "stem temporal stride"),
                    .int(
                        "pool1_stride_t", \.model.spec.pool1StrideT, in: 1...8, "temporal stride of the stem's max pool"
                    ),
                    .bool("with_pool2", \.model.spec.withPool2, "2x1x1 max pool after res2"),
                    .pattern(
                        "inflate", \.model.spec.inflate,
                        "per stage, per block: 1 inflates the block (see inflate_style)"),
                    .choice(
                        "inflate_style", \.model.spec.inflateStyle, "which convs an inflated block makes 3D",
                        [.t3x1x1: "first conv temporal", .t3x3x3: "second conv 3x3x3"]),
                    .pattern(
                        "non_local", \.model.spec.nonLocal,
                        "per stage, per block: 1 adds a non-local block after the block"),
                    .choice("non_local_mode", \.model.spec.nonLocalMode, "pairwise function of the non-local blocks"),
                    .bool(
                        "non_local_use_scale", \.model.spec.nonLocalUseScale,
                        "embedded_gaussian: divide scores by sqrt(C/2) before the softmax"),
                    .bool("non_local_sub_sample", \.model.spec.nonLocalSubSample, "1x2x2 max pool after phi and g"),
                    .pattern(
                        "context", \.model.spec.context,
                        "per stage, per block: 1 adds a GCNet context block after the block's last conv"),
                    .double(
                        "context_ratio", \.model.spec.contextRatio, in: 0.001...1, "context block bottleneck ratio"),
                    .choice(
                        "context_pooling", \.model.spec.contextPooling, "context block pooling",
                        [.attention: "attention"]),
                    .strings(
                        "context_fusion", \.model.spec.contextFusions, allowed: ["channel_add", "channel_mul"],
                        "context block fusion: channel_add, channel_mul or both"),
                    .int(
                        "frozen_stages", \.model.spec.frozenStages, in: -1...4,
                        "-1 none; 0 the stem; k the stem and res2..res(k+1): fixed weights, running BN statistics"),
                    .bool("norm_eval", \.model.spec.normEval, "every BatchNorm uses running statistics while training"),
                    .bool(
                        "zero_init_residual", \.model.spec.zeroInitResidual,
                        "start each block's last BatchNorm weight at zero"),
                ]),
            Section(
                name: "data",
                settings: [
                    .choice(
                        "format", \.data.format, "annotations",
                        [
                            .kineticsCSV:
                                "videos at root/split/label/ or flat at root/split/, as the CVDF download unpacks them",
                            .list: "mmaction2 'path label'", .folders: "root/class/video",
                        ]),
                    .string("root", \.data.root, "folder the videos are under"),
                    .string(
                        "train_annotations", \.data.trainAnnotations,
                        "training annotation file (folders: the training folder)"),
                    .string(
                        "val_annotations", \.data.valAnnotations,
                        "validation annotation file (folders: the validation folder); empty: no validation"),
                    .string(
                        "classes", \.data.classes,
                        "file of class names, one a line (empty: sorted labels of the training annotations)"),
                    .int("clip_len", \.data.clipLength, in: 1...1024, "frames per clip"),
                    .int("frame_interval", \.data.frameInterval, in: 1...64, "frames between sampled frames"),
                    .int("num_clips", \.data.numClips, in: 1...64, "clips per video in training"),
                    .ints(
                        "train_short_side", \.data.trainShortSide, count: 1...2, in: 16...4096,
                        "short side before cropping in training: one value, or a range drawn per clip"),
                    .int("crop_size", \.data.cropSize, in: 16...4096, "square crop, in training and testing"),
                    .choice(
                        "train_crop", \.data.trainCrop, "training crop",
                        [
                            .random: "a crop_size square at a random place; the paper's and PySlowFast's",
                            .multiscale: "mmaction2's MultiScaleCrop resized to crop_size; its I3D recipe",
                        ]),
                    .doubles(
                        "multiscale_scales", \.data.multiscaleScales, count: 1...8, in: 0.01...1,
                        "train_crop = multiscale: crop widths and heights as fractions of the short side (mmaction2's I3D recipe: 1 0.8)"
                    ),
                    .int(
                        "multiscale_max_wh_gap", \.data.multiscaleMaxWHGap, in: 0...8,
                        "train_crop = multiscale: how many scale steps width and height may differ (0: square crops)"),
                    .int(
                        "test_short_side", \.data.testShortSide, in: 16...4096, "short side before cropping in testing"),
                    .choice(
                        "test_crop", \.data.testCrop, "testing crops", [.center: "one", .three: "left, centre, right"]),
                    .int(
                        "test_crop_size", \.data.testCropSize, in: 0...4096,
                        "crop size in testing (0: crop_size); mmaction2 and PySlowFast test three crops of 256"),
                    .bool("flip", \.data.flip, "random horizontal flip with probability 0.5 in training"),
                    .doubles(
                        "mean", \.data.mean, count: 3...3, in: -1000...1000,
                        "per-channel mean subtracted (RGB, 0-255 scale)"),
                    .doubles(
                        "std", \.data.std, count: 3...3, in: 0.001...1000, "per-channel standard deviation divided by"),
                    .int(
                        "workers", \.data.workers, in: 0...256,
                        "decoding threads of the loader (0: on the training thread)"),
                    .double(
                        "read_timeout", \.data.readTimeout, in: 0...86_400,
                        "seconds a worker may take on one video before it counts as broken (a read a hung network or FUSE mount stalls; 0: no limit)"
                    ),
                ]),
            Section(
                name: "train",
                settings: [
                    .string(
                        "work_dir", \.train.workDir,
                        "folder of checkpoints, logs and metrics; a run there resumes by itself"),
                    .int(
                        "seed", \.train.seed, in: 0...Int(Int32.max),
                        "seed of initialisation, shuffling, sampling and dropout"),
                    Setting.value(
                        "batch_size", \.train.batchSize,
                        "clips the model takes at once (per process): a micro-batch when accumulate > 1; auto: the "
                            + "largest that fits in 90% of the memory available, measured at the start (at most 64, "
                            + "the published recipes' batch; a resumed run keeps its checkpoint's)",
                        parse: { text in
                            if text == "auto" { return TrainSection.autoBatchSize }
                            guard Int(text) != nil else {
                                throw ValueProblem(message: "expected auto or a whole number, got '\(text)'")
                            }
                            return try parseInt(text, in: 1...4096)
                        },
                        show: { $0 == TrainSection.autoBatchSize ? "auto" : "\($0)" }),
                    .int(
                        "accumulate", \.train.accumulate, in: 1...1024,
                        "micro-batches whose gradients are summed before each optimizer step: an iteration takes "
                            + "batch_size x accumulate clips per process (BatchNorm sees each micro-batch)"),
                    .double(
                        "label_smoothing", \.train.labelSmoothing, in: 0...0.999,
                        "targets become (1 - this) x the label + this / classes (mmaction2's label_smooth_eps, "
                            + "default 0; PySlowFast's MIXUP.LABEL_SMOOTH_VALUE, 0.1 with mixup)"),
                    .double(
                        "mixup_alpha", \.train.mixing.mixupAlpha, in: 0...100,
                        "mixup of each micro-batch with itself flipped, lambda ~ Beta(alpha, alpha) (0: off; "
                            + "PySlowFast's MIXUP.ALPHA 0.8)"),
                    .double(
                        "cutmix_alpha", \.train.mixing.cutmixAlpha, in: 0...100,
                        "cutmix: a box of every frame from the flipped micro-batch, lambda ~ Beta(alpha, alpha) "
                            + "(0: off; PySlowFast's MIXUP.CUTMIX_ALPHA 1.0)"),
                    .double(
                        "mix_prob", \.train.mixing.probability, in: 0...1,
                        "probability that a micro-batch is mixed when mixup or cutmix is on (PySlowFast's MIXUP.PROB)"),
                    .double(
                        "mix_switch_prob", \.train.mixing.switchProbability, in: 0...1,
                        "with both on: probability of cutmix rather than mixup (PySlowFast's MIXUP.SWITCH_PROB)"),
                    Setting.value(
                        "class_weights", \.train.classWeights,
                        "weight of each class in the loss: empty (all 1), one number per class, or balanced "
                            + "(videos / (classes x the class's videos))",
                        parse: { text in
                            if text.isEmpty { return .uniform }
                            if text == "balanced" { return .balanced }
                            if text.split(whereSeparator: \.isWhitespace).contains("balanced") {
                                throw ValueProblem(
                                    message: "balanced stands alone; give balanced, or one number per class")
                            }
                            return .given(try words(text, count: 1...100_000).map { try parseDouble($0, in: 0...1e6) })
                        },
                        show: { weights in
                            switch weights {
                            case .uniform: ""
                            case .balanced: "balanced"
                            case .given(let values): values.map(format).joined(separator: " ")
                            }
                        }),
                    .choice(
                        "sampler", \.train.sampler, "order of a training epoch's videos",
                        [
                            .shuffle: "each video once, shuffled",
                            .class_balanced: "as many draws, each class equally likely (with replacement)",
                        ]),
                    .int("epochs", \.train.epochs, in: 1...100_000, "epochs to train"),
                    .double("lr", \.train.lr, in: 0...100, "base learning rate"),
                    .choice(
                        "optimizer", \.train.optimizer, "the update",
                        [
                            .sgd: "with momentum, as torch.optim.SGD", .adamw: "as torch.optim.AdamW",
                        ]),
                    .double("momentum", \.train.momentum, in: 0...0.999999, "SGD momentum"),
                    .bool("nesterov", \.train.nesterov, "SGD: Nesterov momentum"),
                    .doubles(
                        "betas", \.train.betas, count: 2...2, in: 0...0.999999,
                        "AdamW: decay rates of the moment estimates (torch's default 0.9 0.999)"),
                    .double("eps", \.train.eps, in: 0...1, "AdamW: added to the denominator (torch's default 1e-8)"),
                    .double(
                        "weight_decay", \.train.weightDecay, in: 0...1,
                        "weight decay: SGD's L2 term in the gradient; AdamW's decoupled decay (torch's default there 0.01)"
                    ),
                    .bool(
                        "decay_norm_and_bias", \.train.decayNormAndBias,
                        "apply weight decay to normalisation weights and biases too"),
                    .choice(
                        "warmup", \.train.warmup, "learning-rate warmup",
                        [.linear: "from lr * warmup_start_factor up to lr", .constant: "lr * warmup_start_factor"]),
                    .double(
                        "warmup_epochs", \.train.warmupEpochs, in: 0...100_000,
                        "warmup length in epochs (fractions allowed)"),
                    .int(
                        "warmup_iterations", \.train.warmupIterations, in: 0...100_000_000,
                        "warmup length in iterations; when above 0 it replaces warmup_epochs"),
                    .double(
                        "warmup_start_factor", \.train.warmupStartFactor, in: 0...1, "warmup starts at lr times this"),
                    .choice(
                        "lr_policy", \.train.lrPolicy, "after warmup",
                        [.step: "times lr_gamma at each of lr_steps", .cosine: "down to lr_min"]),
                    .ints(
                        "lr_steps", \.train.lrSteps, count: 0...64, in: 0...100_000,
                        "epochs at which step decay multiplies the learning rate by lr_gamma"),
                    .double("lr_gamma", \.train.lrGamma, in: 0...1, "step decay factor"),
                    .double("lr_min", \.train.lrMin, in: 0...100, "cosine: the final learning rate"),
                    .double(
                        "grad_clip", \.train.gradClip, in: 0...1e9, "clip gradients to this global L2 norm (0: off)"),
                    .int("log_every", \.train.logEvery, in: 1...1_000_000, "iterations between log lines"),
                    .int("eval_every", \.train.evalEvery, in: 0...100_000, "epochs between validations (0: never)"),
                    .int(
                        "checkpoint_every", \.train.checkpointEvery, in: 0...100_000,
                        "epochs between checkpoints (0: only the last)"),
                    .int(
                        "checkpoint_every_iterations", \.train.checkpointEveryIterations, in: 0...100_000_000,
                        "also a checkpoint every this many iterations (0: off)"),
                    .int(
                        "keep_checkpoints", \.train.keepCheckpoints, in: 1...100_000,
                        "periodic checkpoints kept (the best one is kept besides)"),
                    .int(
                        "precise_bn_batches", \.train.preciseBNBatches, in: 0...100_000,
                        "batches to recompute BatchNorm statistics over before validation (0: off)"),
                    .double(
                        "max_bad_fraction", \.train.maxBadFraction, in: 0...1,
                        "stop (exit 65) when more than this fraction of videos fail to decode"),
                    .bool(
                        "tensorboard", \.train.tensorboard,
                        "write TensorBoard event files into WORK_DIR, a run named after it (tensorboard --logdir work_dirs)"
                    ),
                    .choice(
                        "precision", \.train.precision,
                        "arithmetic of the convolutions in training and validation (docs/training.md)",
                        [
                            .fp32: "float32 throughout",
                            .bf16: "mixed precision: bfloat16 inputs, float32 accumulation, weights and the rest; "
                                + "needs AVX512_BF16 or AMX",
                        ]),
                    .bool(
                        "sync_bn", \.train.syncBN,
                        "under mpirun: BatchNorm statistics over every process's batch (false: each process's own, PySlowFast's default)"
                    ),
                ]),
            Section(
                name: "eval",
                settings: [
                    .int("batch_size", \.eval.batchSize, in: 1...4096, "clips per batch in validation and nleval"),
                    .int(
                        "num_clips", \.eval.numClips, in: 1...64,
                        "clips per video in validation and nleval (views = num_clips x crops)"),
                ]),
        ]
    }
}
