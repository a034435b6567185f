import Foundation
import NLModels
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLLayers
import NLTensor
import NLVideo

struct CheckpointTests {
    let directory = fixtureDirectory()

    /// A state_dict PyTorch saved (the reference's own, via safetensors) loads strictly and gives
    /// the reference's logits.
    @Test func loadsTheReferenceStateDictStrictly() throws {
        let reference = try SafeTensors(contentsOf: "\(directory)/state_dict.safetensors")
        let fixture = try SafeTensors(contentsOf: "\(directory)/model_nl_embedded_gaussian.safetensors")
        let model = Recognizer(spec: try ModelParityTests.model(for: fixture).spec, seed: 99)
        try model.loadStrictly(from: reference, path: "state_dict.safetensors")
        let logits = model.forward(ModelParityTests.clip(for: fixture), training: false)
        #expect(relativeError(logits, fixture.tensor("logits_eval")!) < 1e-3)
    }

    /// nl_i3d_r50 has exactly the reference's keys, shapes and dtypes (the listing of
    /// shared/spec, regenerated from the reference), and 35.4M parameters.
    @Test func fullModelHasTheReferenceKeys() throws {
        let listing = try String(contentsOfFile: "\(directory)/nl_i3d_r50_state_dict.txt", encoding: .utf8)
            .split(separator: "\n").filter { !$0.hasPrefix("#") }.map(String.init)
        let model = Recognizer(spec: ModelSpec.named("nl_i3d_r50")!)
        var file = SafeTensors()
        model.save(into: &file)
        let ours = model.state.map { key, _ in
            let e = file.entries[key]!
            return
                "\(key) [\(e.shape.map(String.init).joined(separator: ", "))] \(e.dtype == .i64 ? "int64" : "float32")"
        }
        #expect(ours == listing)
        #expect(model.parameters.reduce(0) { $0 + $1.parameter.value.count } == 35_397_840)
    }

    /// Saved to a file and loaded into a differently initialised network, every entry comes back.
    @Test func roundTripsThroughAFile() throws {
        let spec = ModelSpec.named("nl_i3d_r50_tiny")!
        let a = Recognizer(spec: spec, seed: 1), b = Recognizer(spec: spec, seed: 2)
        _ = a.forward(Tensor(shape: [2, 8, 32, 32, 3], repeating: 0.5), training: true)  // move BN statistics
        var file = SafeTensors()
        a.save(into: &file)
        let path = "\(scratchDirectory("roundtrip", made: true))/state.safetensors"
        try file.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try b.loadStrictly(from: try SafeTensors(contentsOf: path), path: path)
        var again = SafeTensors()
        b.save(into: &again)
        #expect(again.serialized() == file.serialized())
    }

    @Test func reportsWhatDoesNotMatch() throws {
        let model = Recognizer(spec: ModelSpec.named("nl_i3d_r50_tiny")!)
        var file = SafeTensors()
        model.save(into: &file)
        file.entries["cls_head.fc_cls.weight"] = nil
        file.set("extra.weight", Tensor(zeros: [2]))
        file.set("cls_head.fc_cls.bias", Tensor(zeros: [3]))
        let report = model.load(from: file)
        #expect(report.missing == ["cls_head.fc_cls.weight"])
        #expect(report.unexpected == ["extra.weight"])
        #expect(report.mismatched.count == 1 && report.mismatched[0].hasPrefix("cls_head.fc_cls.bias"))
        #expect(throws: StateDictError.self) { try model.loadStrictly(from: file, path: "x.safetensors") }
    }
}
