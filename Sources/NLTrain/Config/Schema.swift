import NLKeys

/// The sections and their keys, in the order `--print-config` and configs/README.md show them.
/// Each key is declared on its field (`@Key`): name, range or choices, and meaning there.
extension Config {
    struct Section {
        let name: String
        let settings: [Setting]

        init(_ name: String, _ settings: [Setting]) {
            self.name = name
            self.settings = settings
        }
    }

    static var schema: [Section] {
        let defaults = Config()
        func key<Value>(_ path: WritableKeyPath<Config, Key<Value>>) -> Setting { Setting(path, defaults) }
        return [
            Section(
                "model",
                [
                    key(\.model.$name),
                    key(\.model.spec.$depth),
                    key(\.model.spec.$baseChannels),
                    key(\.model.spec.$numClasses),
                    key(\.model.spec.$dropout),
                    key(\.model.$pretrained),
                    key(\.model.spec.$conv1Kernel),
                    key(\.model.spec.$conv1StrideT),
                    key(\.model.spec.$pool1StrideT),
                    key(\.model.spec.$withPool2),
                    key(\.model.spec.$inflate),
                    key(\.model.spec.$inflateStyle),
                    key(\.model.spec.$nonLocal),
                    key(\.model.spec.$nonLocalMode),
                    key(\.model.spec.$nonLocalUseScale),
                    key(\.model.spec.$nonLocalSubSample),
                    key(\.model.spec.$context),
                    key(\.model.spec.$contextRatio),
                    key(\.model.spec.$contextPooling),
                    key(\.model.spec.$contextFusions),
                    key(\.model.spec.$frozenStages),
                    key(\.model.spec.$normEval),
                    key(\.model.spec.$zeroInitResidual),
                ]),
            Section(
                "data",
                [
                    key(\.data.$format),
                    key(\.data.$root),
                    key(\.data.$trainAnnotations),
                    key(\.data.$valAnnotations),
                    key(\.data.$classes),
                    key(\.data.$clipLength),
                    key(\.data.$frameInterval),
                    key(\.data.$numClips),
                    key(\.data.$trainShortSide),
                    key(\.data.$cropSize),
                    key(\.data.$trainCrop),
                    key(\.data.$multiscaleScales),
                    key(\.data.$multiscaleMaxWHGap),
                    key(\.data.$testShortSide),
                    key(\.data.$testCrop),
                    key(\.data.$testCropSize),
                    key(\.data.$flip),
                    key(\.data.$mean),
                    key(\.data.$std),
                    key(\.data.$workers),
                    key(\.data.$readTimeout),
                ]),
            Section(
                "train",
                [
                    key(\.train.$workDir),
                    key(\.train.$seed),
                    key(\.train.$batchSize),
                    key(\.train.$accumulate),
                    key(\.train.$labelSmoothing),
                    key(\.train.mixing.$mixupAlpha),
                    key(\.train.mixing.$cutmixAlpha),
                    key(\.train.mixing.$probability),
                    key(\.train.mixing.$switchProbability),
                    key(\.train.$classWeights),
                    key(\.train.$sampler),
                    key(\.train.$epochs),
                    key(\.train.$lr),
                    key(\.train.$optimizer),
                    key(\.train.$momentum),
                    key(\.train.$nesterov),
                    key(\.train.$betas),
                    key(\.train.$eps),
                    key(\.train.$weightDecay),
                    key(\.train.$decayNormAndBias),
                    key(\.train.$warmup),
                    key(\.train.$warmupEpochs),
                    key(\.train.$warmupIterations),
                    key(\.train.$warmupStartFactor),
                    key(\.train.$lrPolicy),
                    key(\.train.$lrSteps),
                    key(\.train.$lrGamma),
                    key(\.train.$lrMin),
                    key(\.train.$gradClip),
                    key(\.train.$logEvery),
                    key(\.train.$evalEvery),
                    key(\.train.$checkpointEvery),
                    key(\.train.$checkpointEveryIterations),
                    key(\.train.$keepCheckpoints),
                    key(\.train.$preciseBNBatches),
                    key(\.train.$maxBadFraction),
                    key(\.train.$tensorboard),
                    key(\.train.$precision),
                    key(\.train.$syncBN),
                ]),
            Section(
                "eval",
                [
                    key(\.eval.$batchSize),
                    key(\.eval.$numClips),
                ]),
        ]
    }
}

/// A key of the config as the schema holds it: the name and help its field's `@Key` declares,
/// and how a value is read into, and shown from, a whole config.
struct Setting {
    let key: String
    let help: String
    let read: (inout Config, String) throws -> Void
    let show: (Config) -> String

    init<Value>(_ path: WritableKeyPath<Config, Key<Value>>, _ defaults: Config) {
        key = defaults[keyPath: path].name
        help = defaults[keyPath: path].help
        read = { config, text in try config[keyPath: path].read(text) }
        show = { $0[keyPath: path].text }
    }
}
