import Foundation
import NLModels
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLLayers
import NLTensor
import NLVideo

/// SGD against torch.optim.SGD (scripts/fixtures/make_train_fixtures.py) and the learning-rate schedule
/// against values worked out by hand from mmcv's formulas.
struct OptimizationTests {
    let fixture = try! SafeTensors(contentsOf: fixtureDirectory() + "/sgd.safetensors")

    struct Options: Decodable {
        let momentum: Double, nesterov: Bool, weight_decay: Double, decay_norm_and_bias: Bool, clip: Double
    }

    /// A fixture case's three parameters (a conv weight, a bias, a BatchNorm weight) at their start.
    static func parameters(of name: String, in file: SafeTensors) -> [(name: String, parameter: Parameter)] {
        let kinds: [(String, Parameter.Kind)] = [("weight", .weight), ("bias", .bias), ("norm", .normalization)]
        return kinds.map { key, kind in
            let initial = file.tensor("\(name).init.\(key)")!
            let p = Parameter(shape: initial.shape, kind: kind)
            p.value.copy(from: initial)
            return (name: key, parameter: p)
        }
    }

    @Test(arguments: ["plain", "nesterov", "no_norm_decay_clipped"])
    func sgdMatchesPyTorch(_ name: String) throws {
        let file = fixture
        let options = try JSONDecoder().decode(Options.self, from: Data(file.metadata[name]!.utf8))
        let parameters = Self.parameters(of: name, in: file)
        let optimizer = Optimizer(
            parameters: parameters, momentum: options.momentum, nesterov: options.nesterov,
            weightDecay: options.weight_decay, decayNormAndBias: options.decay_norm_and_bias)
        for (step, lr) in file.metadata["lrs"]!.split(separator: " ").map({ Double($0)! }).enumerated() {
            for (key, p) in parameters { p.gradient.copy(from: file.tensor("\(name).grad.\(step).\(key)")!) }
            let scale = options.clip > 0 ? optimizer.clipCoefficient(maxNorm: options.clip) : 1
            optimizer.step(lr: lr, gradientScale: scale)
        }
        for (key, p) in parameters {
            #expect(relativeError(p.value, file.tensor("\(name).final.\(key)")!) < 1e-6, "\(name) \(key)")
            #expect(
                relativeError(optimizer.buffers[key]!, file.tensor("\(name).momentum.\(key)")!) < 1e-6,
                "\(name) momentum of \(key)")
        }
    }

    struct AdamWOptions: Decodable {
        let betas: [Double], eps: Double, weight_decay: Double, decay_norm_and_bias: Bool, clip: Double
    }

    /// AdamW against torch.optim.AdamW over three steps: weights and both moments, with and
    /// without decay on norms and biases, with clipping; its state through a checkpoint.
    @Test(arguments: ["adamw", "adamw_no_norm_decay_clipped"])
    func adamwMatchesPyTorch(_ name: String) throws {
        let file = try SafeTensors(contentsOf: fixtureDirectory() + "/adamw.safetensors")
        let options = try JSONDecoder().decode(AdamWOptions.self, from: Data(file.metadata[name]!.utf8))
        let parameters = Self.parameters(of: name, in: file)
        let rule = Optimizer.Rule.adamw(beta1: options.betas[0], beta2: options.betas[1], epsilon: options.eps)
        var optimizer = Optimizer(
            parameters: parameters, rule: rule, weightDecay: options.weight_decay,
            decayNormAndBias: options.decay_norm_and_bias)
        for (step, lr) in file.metadata["lrs"]!.split(separator: " ").map({ Double($0)! }).enumerated() {
            for (key, p) in parameters { p.gradient.copy(from: file.tensor("\(name).grad.\(step).\(key)")!) }
            let scale = options.clip > 0 ? optimizer.clipCoefficient(maxNorm: options.clip) : 1
            optimizer.step(lr: lr, gradientScale: scale)
            if step == 1 {  // through a checkpoint's state and back, as a resumed run
                var saved = SafeTensors()
                optimizer.save(into: &saved)
                optimizer = Optimizer(
                    parameters: parameters, rule: rule, weightDecay: options.weight_decay,
                    decayNormAndBias: options.decay_norm_and_bias)
                try optimizer.load(from: saved, path: "saved")
                #expect(optimizer.steps == 2)
            }
        }
        for (key, p) in parameters {
            #expect(relativeError(p.value, file.tensor("\(name).final.\(key)")!) < 1e-6, "\(name) \(key)")
            #expect(relativeError(optimizer.buffers[key]!, file.tensor("\(name).exp_avg.\(key)")!) < 1e-6)
            #expect(relativeError(optimizer.secondMoments[key]!, file.tensor("\(name).exp_avg_sq.\(key)")!) < 1e-6)
        }
        var state = SafeTensors()
        optimizer.save(into: &state)
        let sgd = Optimizer(parameters: parameters, momentum: 0.9, nesterov: false, weightDecay: 0)
        #expect(throws: CheckpointError.self) { try sgd.load(from: state, path: "adamw state") }
    }

    func schedule(_ settings: [String], iterationsPerEpoch: Int = 10) throws -> LearningRateSchedule {
        LearningRateSchedule(try Config(path: nil, overrides: settings).train, iterationsPerEpoch: iterationsPerEpoch)
    }

    func expectRates(
        _ s: LearningRateSchedule, _ expected: [Int: Double], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        for (iteration, rate) in expected.sorted(by: { $0.key < $1.key }) {
            #expect(
                abs(s.rate(at: iteration) - rate) < 1e-12,
                "iteration \(iteration): \(s.rate(at: iteration)), expected \(rate)",
                sourceLocation: sourceLocation)
        }
    }

    /// Linear warmup (mmcv: lr * (1 - (1 - i / W) * (1 - start factor))) over 2 epochs of 10
    /// iterations, then x0.1 at epochs 4 and 6.
    @Test func linearWarmupThenSteps() throws {
        let s = try schedule([
            "train.lr=0.1", "train.warmup=linear", "train.warmup_epochs=2", "train.warmup_start_factor=0.1",
            "train.lr_policy=step", "train.lr_steps=4 6", "train.lr_gamma=0.1", "train.epochs=8",
        ])
        expectRates(
            s,
            [
                0: 0.01, 5: 0.1 * (1 - 0.75 * 0.9), 10: 0.055, 19: 0.1 * (1 - 0.05 * 0.9), 20: 0.1, 39: 0.1,
                40: 0.01, 59: 0.01, 60: 0.001, 79: 0.001,
            ])
    }

    /// Constant warmup in iterations; the step schedule underneath keeps its own epochs.
    @Test func constantWarmupInIterations() throws {
        let s = try schedule([
            "train.lr=0.2", "train.warmup=constant", "train.warmup_iterations=3", "train.warmup_start_factor=0.25",
            "train.lr_steps=1", "train.lr_gamma=0.5", "train.epochs=3",
        ])
        expectRates(s, [0: 0.05, 2: 0.05, 3: 0.2, 9: 0.2, 10: 0.1, 29: 0.1])
    }

    /// Cosine annealing per iteration from lr to lr_min over all epochs (warmup off).
    @Test func cosine() throws {
        let s = try schedule([
            "train.lr=0.1", "train.warmup=none", "train.lr_policy=cosine", "train.lr_min=0.001", "train.epochs=4",
        ])
        expectRates(s, [0: 0.1, 20: 0.001 + 0.099 * 0.5, 10: 0.001 + 0.099 * (1 + cos(Double.pi / 4)) / 2, 40: 0.001])
    }
}
