import Foundation
import NLLayers
import NLTensor

/// The largest absolute difference relative to the largest magnitude of the reference:
/// max|a - b| / max|b|. Per-element ratios would blow up on elements that are nearly zero.
public func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.count == b.count, "comparing \(a.shape) with \(b.shape)")
    var difference: Float = 0, scale: Float = 0
    for i in 0..<a.count {
        difference = max(difference, abs(a.data[i] - b.data[i]))
        scale = max(scale, abs(b.data[i]))
    }
    if difference.isNaN { return .infinity }
    return scale == 0 ? difference : difference / scale
}

/// A tensor of normal draws with standard deviation `std`.
public func randomTensor(_ shape: [Int], std: Float = 1, using generator: inout SeededGenerator) -> Tensor {
    let t = Tensor(zeros: shape)
    t.fillNormal(std: std, using: &generator)
    return t
}

/// The safetensors files named `prefix*.safetensors` in `directory`, without the extension, sorted.
public func fixtureNames(in directory: String, prefix: String) -> [String] {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return files.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".safetensors") }
        .map { String($0.dropLast(".safetensors".count)) }.sorted()
}

/// The folder `Fixtures` beside the source file that calls this.
public func fixtureDirectory(_ file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent("Fixtures").path
}

/// The largest magnitude of a tensor.
public func maxMagnitude(_ t: Tensor) -> Float { t.buffer.reduce(0) { max($0, abs($1)) } }

/// Records the largest relative error seen per (case, quantity), printed as one line each so a
/// test run reports how close every layer came to its reference.
public func report(_ caseName: String, _ quantity: String, _ error: Float) {
    print("max-relative-error \(caseName) \(quantity) \(String(format: "%.2e", error))")
}

/// Loads a layer's state from a fixture's "param.<key>" tensors; returns the keys it found no
/// match for on either side, which a correct layer leaves empty.
public func loadState(_ layer: Layer, from file: SafeTensors, prefix: String = "param.") -> [String] {
    var unmatched: [String] = []
    let available = Set(file.names.filter { $0.hasPrefix(prefix) })
    var used = Set<String>()
    for (name, entry) in layer.state {
        let key = prefix + name
        guard available.contains(key) else { unmatched.append("missing in fixture: \(key)"); continue }
        used.insert(key)
        switch entry {
        case .parameter(let p):
            let t = file.tensor(key)!
            guard t.shape == p.checkpointShape else { unmatched.append("shape of \(key): \(t.shape) vs \(p.checkpointShape)"); continue }
            p.load(checkpoint: t)
        case .buffer(let b): b.copy(from: file.tensor(key)!)
        case .counter(let c): c.value = file.int64s(key)!.first!
        }
    }
    unmatched += available.subtracting(used).map { "not in layer: \($0)" }
    return unmatched
}

/// Activations in fixtures are in PyTorch's (N, C, T, H, W); the layers use (N, T, H, W, C).
public func toChannelsLast(_ t: Tensor) -> Tensor { t.rank == 5 ? t.channelsLast() : t }

/// Compares a layer's input and parameter gradients with central differences of the scalar
/// L = sum(forward(x) * r), at `samples` elements of the input and of each parameter. The
/// five-point stencil (f(-2h) - 8f(-h) + 8f(h) - f(2h)) / 12h has fourth-order truncation error,
/// so a step large enough to keep float32 rounding small is still accurate through curved
/// functions such as BatchNorm with batch statistics.
/// Returns the worst |numeric - analytic| / (atol + rtol * |analytic|) seen (<= 1 passes) and
/// which element it was.
public func centralDifferenceCheck(
    _ layer: Layer, input: Tensor, training: Bool, samples: Int = 24, step: Float = 1e-2,
    absoluteTolerance: Float = 3e-3, relativeTolerance: Float = 1e-2, seed: UInt64 = 7
) -> (worst: Float, at: String) {
    var generator = SeededGenerator(seed: seed)
    let y = layer.forward(input, training: training)
    let r = randomTensor(y.shape, using: &generator)
    layer.zeroGradients()
    let dx = layer.backward(r).copy()
    func evaluate() -> Double {
        let out = layer.forward(input, training: training)
        var sum = 0.0
        for i in 0..<out.count { sum += Double(out.data[i]) * Double(r.data[i]) }
        return sum
    }
    var worst: Float = 0, at = ""
    func check(_ name: String, _ values: Tensor, _ analytic: Tensor) {
        for _ in 0..<min(samples, values.count) {
            let i = generator.below(values.count)
            let saved = values.data[i]
            func loss(at offset: Float) -> Double {
                values.data[i] = saved + offset
                defer { values.data[i] = saved }
                return evaluate()
            }
            let numeric = Float((loss(at: -2 * step) - 8 * loss(at: -step) + 8 * loss(at: step) - loss(at: 2 * step)) / Double(12 * step))
            let score = abs(numeric - analytic.data[i]) / (absoluteTolerance + relativeTolerance * abs(analytic.data[i]))
            if score > worst { (worst, at) = (score, "\(name)[\(i)]: numeric \(numeric), analytic \(analytic.data[i])") }
        }
    }
    check("input", input, dx)
    for (name, p) in layer.parameters {
        check(name, p.value, p.gradient.copy())
    }
    return (worst, at)
}

/// Sets every parameter of `layer` to random values (normalisation weights in [0.5, 1.5], the
/// rest normal with std `std`), so that no path through it is trivially zero.
public func randomizeParameters(_ layer: Layer, std: Float = 0.3, using generator: inout SeededGenerator) {
    for (name, p) in layer.parameters {
        if p.kind == .normalization && name.hasSuffix("weight") {
            for i in 0..<p.value.count { p.value.data[i] = 0.5 + generator.uniform() }
        } else {
            p.value.fillNormal(std: std, using: &generator)
        }
    }
}

/// Distinct values spaced `spacing` apart in random order: inputs for max pooling whose winners do
/// not change under small perturbations.
public func distinctValues(_ shape: [Int], spacing: Float = 0.1, using generator: inout SeededGenerator) -> Tensor {
    let count = shape.reduce(1, *)
    var values = (0..<count).map { Float($0) * spacing - Float(count) * spacing / 2 }
    values.shuffle(using: &generator)
    return Tensor(shape: shape, values: values)
}
