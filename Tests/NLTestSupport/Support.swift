import Foundation
import NLLayers
import NLTensor
import NLData
import NLDistributed
import NLModels
import NLTrain
import NLVideo

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

/// How a tensor compares with its reference: a relative error, or, when the reference is zero in
/// exact arithmetic (below `zeroBelow`; a float64 reference then holds rounding noise of ~1e-17,
/// as for the gradient of a bias in front of a softmax or a batch-statistics BatchNorm, which
/// are shift-invariant), the largest magnitude of the tensor, which must be rounding noise too.
public enum Comparison {
    case relative(Float)
    case zero(deviation: Float)

    public init(_ actual: Tensor, _ expected: Tensor, zeroBelow: Float = 1e-9) {
        self =
            maxMagnitude(expected) < zeroBelow
            ? .zero(deviation: maxMagnitude(actual)) : .relative(relativeError(actual, expected))
    }

    /// Within `tolerance` (relative) or `zeroTolerance` (absolute, for exact zeros).
    public func passes(tolerance: Float, zeroTolerance: Float) -> Bool {
        switch self {
        case .relative(let e): e < tolerance
        case .zero(let d): d < zeroTolerance
        }
    }

    public var label: String {
        switch self {
        case .relative(let e): String(format: "%.2e", e)
        case .zero(let d): String(format: "%.2e (zero in exact arithmetic; absolute)", d)
        }
    }
}

/// The largest magnitude of a tensor; NaN if it holds one.
public func maxMagnitude(_ t: Tensor) -> Float { t.buffer.reduce(0) { $0.isNaN || $1.isNaN ? .nan : max($0, abs($1)) } }

/// Records the largest relative error seen per (case, quantity), printed as one line each so a
/// test run reports how close every layer came to its reference.
public func report(_ caseName: String, _ quantity: String, _ error: Float) {
    print("max-relative-error \(caseName) \(quantity) \(String(format: "%.2e", error))")
}

public func report(_ caseName: String, _ quantity: String, _ comparison: Comparison) {
    print("max-relative-error \(caseName) \(quantity) \(comparison.label)")
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
            guard t.shape == p.checkpointShape else {
                unmatched.append("shape of \(key): \(t.shape) vs \(p.checkpointShape)"); continue
            }
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
            let numeric = Float(
                (loss(at: -2 * step) - 8 * loss(at: -step) + 8 * loss(at: step) - loss(at: 2 * step))
                    / Double(12 * step))
            let score =
                abs(numeric - analytic.data[i]) / (absoluteTolerance + relativeTolerance * abs(analytic.data[i]))
            if score > worst {
                (worst, at) = (score, "\(name)[\(i)]: numeric \(numeric), analytic \(analytic.data[i])")
            }
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

/// `count` values in [-1, 1) for `key`, exactly as scripts/reference/reference_models.py's hash_uniform:
/// mix32(fnv1a(key) + i * 0x9E3779B9) / 2^31 - 1, in 32-bit integer arithmetic.
public func hashUniform(_ key: String, count: Int) -> [Double] {
    var base: UInt32 = 0x811C_9DC5
    for byte in key.utf8 { base = (base ^ UInt32(byte)) &* 0x0100_0193 }
    return (0..<count).map { i in
        var x = base &+ UInt32(truncatingIfNeeded: i) &* 0x9E37_79B9
        x = (x ^ (x >> 16)) &* 0x7FEB_352D
        x = (x ^ (x >> 15)) &* 0x846C_A68B
        x ^= x >> 16
        return Double(x) / 2_147_483_648.0 - 1.0
    }
}

/// Sets every float entry of `layer`'s state as reference_models.py's deterministic_state does,
/// so both sides run the same weights without storing them.
public func setDeterministicState(_ layer: Layer) {
    for (key, entry) in layer.state {
        let shape: [Int]
        switch entry {
        case .parameter(let p): shape = p.checkpointShape
        case .buffer(let b): shape = b.shape
        case .counter: continue
        }
        let count = shape.reduce(1, *)
        let u = hashUniform(key, count: count)
        let components = key.split(separator: ".")
        let values: [Double]
        if key.hasSuffix("running_var") {
            values = u.map { 1 + 0.2 * $0 }
        } else if key.hasSuffix("running_mean") || key.hasSuffix("bias") {
            values = u.map { 0.1 * $0 }
        } else if shape.count == 1 || (shape.count == 4 && components[components.count - 2] == "1") {
            values = u.map { 1 + 0.2 * $0 }
        } else {
            // He-uniform; non-local theta, phi and g a tenth of that, as the script does.
            var a = (6.0 / Double(count / shape[0])).squareRoot()
            if key.contains(".non_local_block.") && !key.contains(".conv_out.") { a /= 10 }
            values = u.map { $0 * a }
        }
        let tensor = Tensor(shape: shape, values: values.map { Float($0) })
        switch entry {
        case .parameter(let p): p.load(checkpoint: tensor)
        case .buffer(let b): b.copy(from: tensor)
        case .counter: break
        }
    }
}
