import Foundation
import NLData
import NLModels
import NLDistributed
import NLLayers
import NLTensor
import NLVideo

/// What a run prepares before its first step: the work directory, the loaders, each convolution's
/// algorithm, and the log's start.
extension Trainer {
    /// In bfloat16 precision, each convolution's algorithm for the training clip: rank 0's choice
    /// (ConvolutionChoices), given to every rank.
    func chooseConvolutions(_ model: Recognizer, clipShape: [Int]) throws {
        guard config.train.precision == .bf16 else { return }
        var chosen = ""
        try onRoot {
            ConvolutionChoices.apply(
                to: model, clipShape: clipShape, precision: .bf16, training: true, log: { log($0) }
            ) {
                StopSignal.received.load(ordering: .relaxed) != 0  // the run stops before training
            }
            chosen = ConvolutionChoices.letters(model.convolutions.map(\.algorithm))
        }
        model.use(ConvolutionChoices.algorithms(parallel.fromRoot(text: chosen)) ?? [])
    }

    /// Rank 0 takes the work directory: its lock, what a killed run left half-written, the config.
    func openWorkDirectory() throws {
        try config.require(["data.root", "data.train_annotations", "train.work_dir"], by: "nltrain")
        try onRoot {
            workDirectory = try WorkDirectory(config.train.workDir)
            try workDirectory.lock()
            log.workDirectory = workDirectory
            let unfinished = workDirectory.removeUnfinishedWrites()
            if !unfinished.isEmpty {
                log("removed what a killed run left half-written: \(unfinished.joined(separator: ", "))")
            }
        }
    }

    /// The training loader and, when the config validates, the validation loader; each dataset
    /// summarised in the log, and the model's clip checked against both.
    func loaders(
        for model: Recognizer, recordingBadVideos: Bool = true
    ) throws -> (
        training: DataLoader, validation: DataLoader?
    ) {
        let trainSet = try DataSetup.dataset(config, split: .train)
        try resolveAutoBatchSize(
            clipShape: DataSetup.trainingPipeline(config).viewShape, videos: trainSet.entries.count)
        classes = trainSet.classes
        log("training set: \(trainSet.summary)")
        for problem in trainSet.problems.prefix(10) { log("  \(problem)") }
        if let problem = trainSet.labelProblem(numClasses: config.model.spec.numClasses) { throw problem }
        guard trainSet.classes.count <= config.model.spec.numClasses else {
            throw ConfigError(
                source: config.source(of: "model.num_classes"),
                message:
                    "model.num_classes is \(config.model.spec.numClasses) but the dataset has \(trainSet.classes.count) classes"
            )
        }
        if trainSet.classes.count < config.model.spec.numClasses {
            log(
                "warning: model.num_classes is \(config.model.spec.numClasses) but the dataset has \(trainSet.classes.count) "
                    + "classes: \(config.model.spec.numClasses - trainSet.classes.count) outputs of the classifier are never "
                    + "trained (fine-tuning? set model.num_classes = \(trainSet.classes.count); --init leaves out a head of "
                    + "another size)")
        }
        // Every rank lists the videos it could not read in the same file (lines are appended whole).
        let badVideos = BadVideoLog(
            file: recordingBadVideos ? "\(config.train.workDir)/bad_videos.txt" : nil,
            maxFraction: config.train.maxBadFraction,
            dataset: trainSet
        ) { [weak self] in
            self?.log($0, everyRank: true)
        }
        let training = try DataSetup.trainingLoader(
            config, dataset: trainSet, badVideos: badVideos, rank: parallel.rank, worldSize: parallel.size)
        let validation =
            try config.data.valAnnotations.isEmpty || config.train.evalEvery == 0
            ? nil
            : DataSetup.evaluationLoader(
                config, dataset: DataSetup.dataset(config, split: .val),
                badVideos: BadVideoLog(file: nil, maxFraction: 1, action: "counting as a miss") { [weak self] in
                    self?.log($0)
                },
                rank: parallel.rank, worldSize: parallel.size)
        if let validation { log("validation set: \(validation.dataset.summary)") }
        for loader in [training, validation].compactMap({ $0 }) {
            try DataSetup.requireClip(model, loader: loader, config: config)
        }
        return (training, validation)
    }

    /// The run's TensorBoard file (rank 0) and the log line saying what it trains.
    func startLogging(_ state: TrainingState, training: DataLoader) throws {
        if config.train.tensorboard, parallel.isRoot {
            // A resumed run's file starts a session after the checkpoint's step: TensorBoard drops
            // what an interrupted run logged past it, so no step shows twice.
            log.tensorBoard = try EventFileWriter(
                directory: workDirectory.path,
                resumingAt: state.globalIteration > 0 ? state.globalIteration + 1 : nil)
            log.tensorBoard?.text("```\n\(config.text)```", tag: "config", step: state.globalIteration)
        }
        log(
            "training \(config.model.name) for \(config.train.epochs) epochs of \(training.batchesPerEpoch) iterations (batch "
                + (config.train.accumulate > 1
                    ? "\(config.train.batchSize) x \(config.train.accumulate) accumulated = \(config.train.batchSize * config.train.accumulate)"
                    : "\(config.train.batchSize)")
                + (parallel.isDistributed
                    ? " on each of \(parallel.size) processes, \(config.train.batchSize * config.train.accumulate * parallel.size) in all"
                    : "")
                + ") in \(config.train.workDir)"
                + (state.globalIteration > 0
                    ? ", resuming at epoch \(state.epoch + 1) iteration \(state.iteration)" : ""))
    }
}
