import Foundation
import NLData
import NLModels
import NLDistributed
import NLLayers
import NLTensor
import NLVideo

/// The datasets, samplers and clip pipelines a config's [data] and [eval] sections describe.
public enum DataSetup {
    public enum Split: String, CaseIterable, Sendable { case train, val }

    /// The split's videos. Class indices come from the classes file or, without one, from the
    /// training annotations, so that both splits agree.
    public static func dataset(_ config: Config, split: Split) throws -> Dataset {
        let data = config.data
        let annotations = split == .train ? data.trainAnnotations : data.valAnnotations
        guard !annotations.isEmpty else {
            throw ConfigError(
                source: config.source(of: "data.\(split.rawValue)_annotations"),
                message: "[data] \(split.rawValue)_annotations is not set")
        }
        return try Annotations.load(
            format: data.format, annotations: annotations, root: data.root,
            classes: data.classes.isEmpty ? nil : data.classes,
            classesFrom: data.trainAnnotations.isEmpty ? nil : data.trainAnnotations)
    }

    /// Fails, naming the keys to set, unless the paths the split is read from (data.root, its
    /// annotations, the classes file or the training annotations it takes classes from) are on
    /// this machine. For a checkpoint's config, which keeps them as they were where it was
    /// trained: a checkpoint from another machine would fail on its first path, as a missing file.
    public static func checkPathsOfCheckpointConfig(_ config: Config, split: Split) throws(ConfigError) {
        let data = config.data
        var paths = [
            ("data.root", data.root),
            ("data.\(split.rawValue)_annotations", split == .train ? data.trainAnnotations : data.valAnnotations),
        ]
        paths.append(
            data.classes.isEmpty ? ("data.train_annotations", data.trainAnnotations) : ("data.classes", data.classes))
        // Where the loader will look: a folders dataset's annotation paths are relative to data.root.
        func located(_ key: String, _ path: String) -> String {
            data.format == .folders && key.hasSuffix("_annotations") ? Annotations.resolve(path, root: data.root) : path
        }
        let absent = paths.filter { !$0.1.isEmpty && !FileManager.default.fileExists(atPath: located($0.0, $0.1)) }
        guard let first = absent.first else { return }
        throw ConfigError(
            source: config.source(of: first.0),
            message: absent.map { "\($0.0) = \($0.1)" }.joined(separator: ", ")
                + ": not on this machine (the checkpoint keeps the paths it was trained with); give "
                + absent.map { "--set \($0.0)=..." }.joined(separator: " ") + ", or --config FILE")
    }

    /// Training: clip_len frames at frame_interval from a random start (num_clips joined in time),
    /// a short side drawn from train_short_side, the train_crop crop, a random flip. An error
    /// when the dataset holds less than one batch for each process.
    public static func trainingLoader(
        _ config: Config, dataset: Dataset, badVideos: BadVideoLog?, rank: Int = 0,
        worldSize: Int = 1
    ) throws -> DataLoader {
        let d = config.data
        let pipeline = try trainingPipeline(config)
        // An iteration's clips (TrainingStep splits them into micro-batches).
        let iterationClips = config.train.batchSize * config.train.accumulate
        var options = DataLoader.Options(batchSize: iterationClips, workers: d.workers, seed: UInt64(config.train.seed))
        (options.rank, options.worldSize, options.readTimeout) = (rank, worldSize, d.readTimeout)
        options.classBalanced = config.train.sampler == .class_balanced
        let loader = DataLoader(dataset: dataset, pipeline: pipeline, options: options, badVideos: badVideos)
        guard loader.batchesPerEpoch > 0 else {
            throw DataError(
                "\(d.trainAnnotations): \(dataset.entries.count) videos, fewer than one iteration of \(iterationClips)"
                    + (config.train.accumulate > 1 ? " (batch_size x accumulate)" : "")
                    + (worldSize > 1 ? " for each of \(worldSize) processes" : ""))
        }
        return loader
    }

    /// The training pipeline of the config: its clips' shape is what a training step takes.
    public static func trainingPipeline(_ config: Config) throws(ConfigError) -> ClipPipeline {
        let d = config.data
        let sides = d.trainShortSide
        let crop: any ClipCrop
        switch d.trainCrop {
        case .random:
            try requireCrop(d.cropSize, "data.crop_size", within: sides.min()!, "data.train_short_side", config)
            crop = RandomCrop(size: d.cropSize)
        case .multiscale:  // fractions of the short side, resized to crop_size: any size fits
            crop = MultiScaleCrop(
                inputSize: d.cropSize, scales: d.multiscaleScales, maxWHScaleGap: d.multiscaleMaxWHGap)
        }
        return ClipPipeline(
            sampler: SampleFrames(clipLength: d.clipLength, frameInterval: d.frameInterval, numClips: d.numClips),
            resize: ShortEdgeResize(range: sides.min()!...sides.max()!), crop: crop,
            flip: d.flip ? RandomHorizontalFlip(probability: 0.5) : nil, normalize: normalize(config))
    }

    /// Evaluation: `clips` clips evenly spaced (eval.num_clips by default), test_short_side, and
    /// `crops` crops of test_crop_size (test_crop by default: one centre crop or three).
    public static func evaluationLoader(
        _ config: Config, dataset: Dataset, clips: Int? = nil, crops: Int? = nil,
        badVideos: BadVideoLog?, rank: Int = 0, worldSize: Int = 1
    ) throws -> DataLoader {
        let d = config.data
        let three = crops.map { $0 == 3 } ?? (d.testCrop == .three)
        let size = d.testCropSize > 0 ? d.testCropSize : d.cropSize
        try requireCrop(
            size, d.testCropSize > 0 ? "data.test_crop_size" : "data.crop_size", within: d.testShortSide,
            "data.test_short_side", config)
        let sampler = SampleFrames(
            clipLength: d.clipLength, frameInterval: d.frameInterval, numClips: clips ?? config.eval.numClips,
            testMode: true)
        let pipeline = ClipPipeline(
            sampler: sampler, resize: ShortEdgeResize(d.testShortSide),
            crop: three ? ThreeCrop(size: size) : CenterCrop(size: size),
            normalize: normalize(config))
        var options = DataLoader.Options(
            batchSize: config.eval.batchSize, workers: d.workers, seed: UInt64(config.train.seed))
        (options.rank, options.worldSize, options.readTimeout) = (rank, worldSize, d.readTimeout)
        return DataLoader(dataset: dataset, pipeline: pipeline, options: options, badVideos: badVideos)
    }

    /// What one forward of the model takes from `loader`, (N, T, H, W): in training a micro-batch
    /// of train.batch_size clips (the loader's batch holds accumulate of them).
    public static func forwardShape(_ loader: DataLoader, config: Config) -> [Int] {
        let batch = loader.mode == .training ? config.train.batchSize : loader.options.batchSize
        return [batch] + loader.clipShape.dropLast()
    }

    /// Fails (64) unless `model` can take `loader`'s batches (Recognizer.clipProblem).
    public static func requireClip(_ model: Recognizer, loader: DataLoader, config: Config) throws(ConfigError) {
        let training = loader.mode == .training
        guard let problem = model.clipProblem(forwardShape(loader, config: config), training: training)
        else { return }
        let key = training ? "train.batch_size" : "eval.batch_size"
        throw ConfigError(source: config.source(of: key, "data.crop_size"), message: problem)
    }

    /// Readies `model` to evaluate `loader`'s batches (nleval, nlpredict): fails (64) unless it can
    /// take them, and makes it compute in train.precision, in bf16 with each convolution's
    /// algorithm chosen by forward passes at their shape (ConvolutionChoices), `log` hearing which.
    public static func prepare(
        _ model: Recognizer, toEvaluate loader: DataLoader, config: Config, log: (String) -> Void
    ) throws(ConfigError) {
        try requireClip(model, loader: loader, config: config)
        ConvolutionChoices.apply(
            to: model, clipShape: forwardShape(loader, config: config), precision: config.train.precision,
            training: false, log: log)
    }

    /// A crop larger than the short side frames are decoded at would need pixels the frames do
    /// not have: a config error, as in the frameworks (whose crops then fail or come out smaller).
    private static func requireCrop(
        _ crop: Int, _ cropKey: String, within side: Int, _ sideKey: String, _ config: Config
    ) throws(ConfigError) {
        guard crop > side else { return }
        throw ConfigError(
            source: config.source(of: cropKey, sideKey),
            message: "\(cropKey) \(crop) is larger than the short side the frames are decoded at (\(sideKey): \(side))")
    }

    private static func normalize(_ config: Config) -> Normalize {
        Normalize(mean: config.data.mean.map(Float.init), std: config.data.std.map(Float.init))
    }
}
