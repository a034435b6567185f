import Foundation
import NLLayers
import NLTensor

/// Each convolution's algorithm, chosen on this machine: the candidates timed, forward and
/// backward, on every distinct convolution of a network at the clip it trains on, and the fastest
/// kept for each (the same shapes get the same choice).
public struct ConvolutionChoice: Sendable, Equatable {
    /// One per convolution of the network, in its order (Recognizer.convolutions).
    public var algorithms: [ConvolutionAlgorithm]
    /// Per distinct shape (Conv3d.shapeDescription), in the network's order: how many
    /// convolutions have it, the milliseconds of their forward and backward under each candidate,
    /// and the one chosen.
    public var shapes: [Shape]

    public struct Shape: Sendable, Equatable {
        public var description: String
        public var count: Int
        public var milliseconds: [ConvolutionAlgorithm: Double]
        /// oneDNN's bfloat16 against the emulation on this shape, in the passes timed
        /// (Conv3d.bfloat16Discrepancy).
        public var discrepancy: Float?
        /// oneDNN's kernels for this shape (Conv3d.bfloat16Kernels).
        public var kernels: String?
        public var chosen: ConvolutionAlgorithm
    }

    /// The largest discrepancy oneDNN's bfloat16 may have from the emulation and be chosen.
    public static let tolerance: Float = 1e-4
    /// Changes when the check (Conv3d.bfloat16Discrepancy) or the timing does, so that choices
    /// made the older way are made again: 2 holds the forward to a bfloat16 output too; 3 times
    /// the candidates in turns, each convolution by its fastest pass, and keeps no choice timed
    /// on a busy machine (ConvolutionChoices.busy).
    public static let version = 3

    /// The candidates' times and the choice, a shape a line.
    public var table: [String] {
        shapes.map { shape in
            let times = shape.milliseconds.sorted { $0.key.rawValue < $1.key.rawValue }.map {
                String(format: "%@ %.1f ms", $0.key.rawValue, $0.value)
            }
            let check = shape.discrepancy.map {
                String(format: "; check %.1e%@", $0, $0 > Self.tolerance ? " FAILED" : "")
            }
            let kernels = shape.kernels.map { " (oneDNN's \($0))" } ?? ""
            return "\(shape.count) x \(shape.description): \(times.joined(separator: ", "))\(kernels)\(check ?? "") -> "
                + shape.chosen.rawValue
        }
    }
}

extension Recognizer {
    /// The network's convolutions, in its order.
    public var convolutions: [Conv3d] { descendants.compactMap { $0 as? Conv3d } }

    /// Makes each convolution, in order, run one of `algorithms`.
    public func use(_ algorithms: [ConvolutionAlgorithm]) {
        for (conv, algorithm) in zip(convolutions, algorithms) { conv.algorithm = algorithm }
    }

    /// Times `candidates` on a network of `spec` of its own (a probe: its statistics and
    /// gradients change), `repeats` passes each on random clips of `clipShape` (N, T, H, W) after
    /// one untimed, the candidates in turns and each convolution's time its fastest pass; checks
    /// oneDNN's bfloat16 against the emulation on each shape, and chooses per shape the fastest
    /// that passed (the own float32 where none did). With `training` a pass is forward and
    /// backward, as a training step runs them; without, forward alone inside Inference.run, as
    /// evaluation runs it, in the memory evaluation takes. Nil when `shouldStop` says so between
    /// passes (a signal: the run stops, nothing chosen).
    public static func tuneConvolutions(
        spec: ModelSpec, clipShape: [Int], candidates: [ConvolutionAlgorithm], training: Bool,
        repeats: Int = 2, shouldStop: () -> Bool = { false }
    ) -> ConvolutionChoice? {
        let model = Recognizer(spec: spec)
        let convs = model.convolutions
        var generator = SeededGenerator(seed: 3)
        let clip = Tensor(zeros: clipShape + [3])
        clip.fillNormal(std: 1, using: &generator)
        let dLogits = Tensor(zeros: [clipShape[0], spec.numClasses])
        dLogits.fillNormal(std: 0.1, using: &generator)
        var seconds: [ConvolutionAlgorithm: [Double]] = [:]  // each convolution's fastest pass
        Conv3d.measuresTime = true
        defer { Conv3d.measuresTime = false }
        // The candidates take turns, pass by pass, so that a spell of a slower machine falls on
        // both; each convolution keeps its fastest pass, the one least disturbed.
        for pass in 0...repeats {  // the first untimed: oneDNN makes its primitives
            for candidate in candidates {
                if shouldStop() { return nil }
                for conv in convs { (conv.algorithm, conv.secondsSpent) = (candidate, 0) }
                if training {
                    _ = model.forward(clip, training: true)
                    _ = model.backward(dLogits)
                } else {
                    _ = Inference.run { model.forward(clip, training: false) }  // as evaluation runs it
                }
                guard pass > 0 else { continue }
                let times = convs.map(\.secondsSpent)
                seconds[candidate] = seconds[candidate].map { zip($0, times).map { min($0, $1) } } ?? times
            }
        }
        var shapes: [ConvolutionChoice.Shape] = []
        var index: [String: Int] = [:]
        for (i, conv) in convs.enumerated() {
            let description = conv.shapeDescription
            if index[description] == nil {
                index[description] = shapes.count
                shapes.append(
                    .init(description: description, count: 0, milliseconds: [:], kernels: nil, chosen: candidates[0]))
            }
            let k = index[description]!
            shapes[k].count += 1
            for candidate in candidates {
                shapes[k].milliseconds[candidate, default: 0] += seconds[candidate]![i] * 1000
            }
        }
        if candidates.contains(.bfloat16) {
            for conv in convs where shapes[index[conv.shapeDescription]!].discrepancy == nil {
                conv.algorithm = .bfloat16
                shapes[index[conv.shapeDescription]!].discrepancy = conv.bfloat16Discrepancy(
                    training: training, using: &generator)
                shapes[index[conv.shapeDescription]!].kernels = conv.bfloat16Kernels
            }
        }
        for k in shapes.indices {
            let passing = candidates.filter { $0 != .bfloat16 || shapes[k].discrepancy! <= ConvolutionChoice.tolerance }
            shapes[k].chosen = passing.min { shapes[k].milliseconds[$0]! < shapes[k].milliseconds[$1]! } ?? .own
        }
        let algorithms = convs.map { shapes[index[$0.shapeDescription]!].chosen }
        return ConvolutionChoice(algorithms: algorithms, shapes: shapes)
    }
}
