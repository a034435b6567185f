import Foundation
import NLLayers
import NLModels
import NLTensor
import NLTrain

/// What `nlmodel` does: summaries, running a model on a saved input, inflating 2D weights.
public enum ModelTool {
    /// The network `config` describes, initialised from its seed, with `checkpoint`'s weights
    /// when one is given (all of them: strict); `dropout: false` builds it without dropout.
    public static func model(_ config: Config, checkpoint: Checkpoint? = nil, dropout: Bool = true) throws -> Recognizer
    {
        var spec = config.model.spec
        if !dropout { spec.dropout = 0 }
        let model = Recognizer(spec: spec, seed: UInt64(config.train.seed))
        try checkpoint?.load(into: model)
        return model
    }

    /// The table of `nlmodel summary`: each layer's output shape, parameters and FLOPs, and totals.
    public static func summary(of model: Recognizer, name: String, clipShape: [Int]) -> String {
        let rows = model.summary(clipShape: clipShape)
        func shape(_ s: [Int]) -> String {  // printed in PyTorch's (N, C, T, H, W) order
            (s.count == 5 ? [s[0], s[4], s[1], s[2], s[3]] : s).map(String.init).joined(separator: " x ")
        }
        func gflops(_ macs: Int) -> String { String(format: "%.3f", 2 * Double(macs) / 1e9) }
        let width = max(40, (rows.map(\.name.count).max() ?? 0) + 2)
        func pad(_ s: String, _ n: Int, left: Bool = false) -> String {
            let fill = String(repeating: " ", count: max(0, n - s.count))
            return left ? fill + s : s + fill
        }
        var lines = [
            "\(name) for a clip of \(clipShape[0]) x 3 x \(clipShape[1]) x \(clipShape[2]) x \(clipShape[3]) (N x C x T x H x W)",
            pad("layer", width) + pad("output (N x C x T x H x W)", 30) + pad("parameters", 14, left: true)
                + pad("GFLOPs", 12, left: true),
        ]
        for row in rows {
            lines.append(
                pad(row.name, width) + pad(shape(row.outputShape), 30)
                    + pad(grouped(row.parameters), 14, left: true) + pad(gflops(row.multiplyAdds), 12, left: true))
        }
        let parameters = rows.reduce(0) { $0 + $1.parameters }, macs = rows.reduce(0) { $0 + $1.multiplyAdds }
        lines.append(
            pad("total", width + 30) + pad(grouped(parameters), 14, left: true) + pad(gflops(macs), 12, left: true))
        lines.append("")
        lines.append(
            "Parameters: \(String(format: "%.1f", Double(parameters) / 1e6))M learned values (running statistics not counted)."
        )
        lines.append(
            "FLOPs: forward pass, a multiply-add counted as 2 FLOPs (PyTorch's FlopCounterMode convention), over")
        lines.append(
            "convolutions, the classifier and the non-local and context blocks' matrix products; normalisation,")
        lines.append("activations, pooling and softmax are not counted. A training step costs about 3x the forward.")
        return lines.joined(separator: "\n")
    }

    /// Runs the tensor `clip` (N, 3, T, H, W) of `input` through `model` and returns
    /// `logits` (N, classes); with `backward`, also `loss` (of the int64 `labels` (N) of `input`)
    /// and the gradient of every parameter as `grad.<key>`, in PyTorch's layouts.
    /// `trainMode` uses batch statistics in BatchNorm, as PyTorch's train().
    public static func forward(
        _ model: Recognizer, input: SafeTensors, inputPath: String, trainMode: Bool,
        backward: Bool
    ) throws -> SafeTensors {
        guard let clip = input.tensor("clip"), clip.rank == 5, clip.shape[1] == 3 else {
            throw SafeTensorsError(path: inputPath, problem: "needs a tensor 'clip' of shape [N, 3, T, H, W]")
        }
        if let problem = model.clipProblem([clip.shape[0]] + clip.shape[2...], training: trainMode) {
            throw SafeTensorsError(path: inputPath, problem: problem)
        }
        let logits = model.forward(clip.channelsLast(), training: trainMode).copy()
        var output = SafeTensors()
        output.set("logits", logits)
        guard backward else { return output }
        let n = clip.shape[0], classes = model.spec.numClasses
        guard let labels = input.int64s("labels"), labels.count == n,
            labels.allSatisfy({ (0..<Int64(classes)).contains($0) })
        else {
            throw SafeTensorsError(
                path: inputPath,
                problem: "--backward needs an int64 tensor 'labels' of \(n) class indices below \(classes)")
        }
        let (loss, dLogits) = SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: labels.map { Int($0) })
        model.zeroGradients()
        _ = model.backward(dLogits)
        output.set("loss", Tensor(shape: [], values: [loss]))
        model.saveGradients(into: &output)
        return output
    }

    /// The network's weights after inflating `file2D` (torchvision key names), as a safetensors
    /// file carrying the resolved config, and what was mapped.
    public static func inflate(
        _ model: Recognizer, config: Config, from file2D: SafeTensors, path: String
    ) throws -> (SafeTensors, InflationReport) {
        let report = model.inflate(from: file2D)
        if report.mapped.isEmpty {
            throw SafeTensorsError(
                path: path,
                problem:
                    "no tensor with torchvision's ResNet names (conv1.weight, layer1.0.conv1.weight, ...) fits the model"
            )
        }
        var output = SafeTensors()
        model.save(into: &output)
        output.metadata = ["config": config.text, "inflated_from": path]
        return (output, report)
    }

    /// The lines `nlmodel inflate` prints about a report.
    public static func describe(_ report: InflationReport, from path: String) -> String {
        func list(_ keys: [String]) -> String {
            keys.isEmpty
                ? "none"
                : keys.prefix(6).joined(separator: ", ") + (keys.count > 6 ? ", ... (\(keys.count) in all)" : "")
        }
        return """
            mapped \(report.mapped.count) tensors from \(path) (2D kernels repeated along time and divided by its length; BatchNorm copied)
            not used from \(path): \(list(report.unused))
            shape mismatches: \(list(report.mismatched))
            left at initialisation: \(list(report.notInitialized))
            """
    }
}

/// 35397840 as "35,397,840".
func grouped(_ n: Int) -> String {
    let digits = Array(String(n))
    var out = ""
    for (i, d) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(d)
    }
    return out
}
