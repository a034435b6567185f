import Foundation
import NLModels
import NLTensor
import NLTestSupport
import NLTrain
import Testing

/// Weights as other frameworks save them (scripts/fixtures/make_weights_fixtures.py): each file
/// gives exactly the weights of weights.safetensors, which PyTorch wrote of the same state dict.
struct ForeignWeightsTests {
    static let directory = "\(fixtureDirectory())/weights"
    static var reference: SafeTensors { try! SafeTensors(contentsOf: "\(directory)/weights.safetensors") }

    /// The fixture's model: nl_i3d_r50 at base 2 with 5 classes.
    static var spec: ModelSpec {
        var spec = ModelSpec.named("nl_i3d_r50")!
        spec.baseChannels = 2
        spec.numClasses = 5
        return spec
    }

    func expectReference(_ weights: SafeTensors, _ file: String, foldedMeans: Bool = false) {
        let reference = Self.reference
        #expect(weights.names == reference.names, "\(file): keys")
        for name in reference.names where weights.entries[name] != nil {
            let mine = weights.entries[name]!, theirs = reference.entries[name]!
            #expect(mine.shape == theirs.shape && mine.dtype == theirs.dtype, "\(file): \(name)")
            if foldedMeans && name.hasSuffix("conv_out.bn.running_mean") {  // (m + b) - b, in float32
                #expect(relativeError(weights.tensor(name)!, reference.tensor(name)!) < 1e-6, "\(file): \(name)")
            } else {
                #expect(mine.bytes == theirs.bytes, "\(file): \(name) differs")
            }
        }
    }

    @Test(arguments: ["mmengine.pth", "mmcv_legacy_fp16.pth", "bare_bf16.pth"])
    func pyTorchFilesGiveTheirStateDict(file: String) throws {
        let path = "\(Self.directory)/\(file)"
        let foreign = try ForeignWeights(data: try Data(contentsOf: URL(fileURLWithPath: path)), path: path)
        expectReference(foreign.weights, file)
        // mmengine's extras are left out; the model loads strictly.
        #expect(foreign.leftOut == (file == "mmengine.pth" ? ["data_preprocessor.mean", "data_preprocessor.std"] : []))
        let checkpoint = try Checkpoint(path: path)
        try checkpoint.load(into: Recognizer(spec: Self.spec))
        if file != "bare_bf16.pth" {
            #expect(
                checkpoint.file.metadata[ForeignWeights.sourceConfigKey]?.contains("mode='embedded_gaussian'") == true)
        }
        #expect(
            checkpoint.classes
                == (file == "mmengine.pth" ? ["abseiling", "air drumming", "archery", "baking cookies", "zumba"] : nil))
    }

    @Test(arguments: ["caffe2_py2.pkl", "caffe2_py2_p0.pkl", "caffe2_p2.pkl", "caffe2_p5.pkl"])
    func caffe2BlobFilesGiveTheSameWeights(file: String) throws {
        let path = "\(Self.directory)/\(file)"
        let foreign = try ForeignWeights(data: try Data(contentsOf: URL(fileURLWithPath: path)), path: path)
        expectReference(foreign.weights, file, foldedMeans: true)
        #expect(foreign.leftOut.contains("lr") && foreign.leftOut.contains("model_iter"))
        #expect(foreign.leftOut.filter { $0.hasSuffix("_momentum") }.count == 6)
        try Checkpoint(path: path).load(into: Recognizer(spec: Self.spec))
    }

    /// Blob names map as PySlowFast maps them, then to mmaction2's modules.
    @Test func caffe2Names() {
        let cases: [(String, String?)] = [
            ("conv1_w", "backbone.conv1.conv.weight"), ("res_conv1_bn_riv", "backbone.conv1.bn.running_var"),
            ("res2_0_branch2a_w", "backbone.layer1.0.conv1.conv.weight"),
            ("res5_2_branch2c_bn_s", "backbone.layer4.2.conv3.bn.weight"),
            ("res3_0_branch1_bn_rm", "backbone.layer2.0.downsample.bn.running_mean"),
            ("nonlocal_conv3_1_theta_w", "backbone.layer2.1.non_local_block.theta.conv.weight"),
            ("nonlocal_conv4_5_phi_b", "backbone.layer3.5.non_local_block.phi.0.conv.bias"),
            ("nonlocal_conv4_3_g_w", "backbone.layer3.3.non_local_block.g.0.conv.weight"),
            ("nonlocal_conv4_3_out_w", "backbone.layer3.3.non_local_block.conv_out.conv.weight"),
            ("nonlocal_conv3_3_bn_b", "backbone.layer2.3.non_local_block.conv_out.bn.bias"),
            ("pred_w", "cls_head.fc_cls.weight"), ("pred_b", "cls_head.fc_cls.bias"),
            ("res2_0_branch2a_w_momentum", nil), ("lr", nil), ("model_iter", nil), ("res2_0_branch9_w", nil),
        ]
        for (blob, key) in cases {
            let mapped = Caffe2Weights.mmaction2Name(blob).map { "\($0.module).\($0.field)" }
            #expect(mapped == key, "\(blob)")
        }
    }

    /// A state dict written by hand in protocol 0, the text protocol: every opcode of it read.
    @Test func protocolZero() throws {
        // {u'a': (1, 2.5, 'x', None, True, 7L)} as Python 2's pickle.dumps(..., 0) writes it
        let text = "(dp0\nVa\np1\n(I1\nF2.5\nS'x'\np2\nNI01\nL7L\ntp3\ns."
        let value = try PickledWeights(data: Data(text.utf8), path: "p0").object
        let items = try #require(value["a"]?.elements)
        #expect(items.count == 6 && items[0].int == 1 && items[2].text == "x" && items[4].int == 1 && items[5].int == 7)
        if case .float(let f) = items[1] { #expect(f == 2.5) } else { Issue.record("not a float") }
    }

    /// Files that are not weights are refused with what is wrong, naming the file.
    @Test func refusals() throws {
        func problem(_ bytes: [UInt8]) -> String {
            do {
                _ = try ForeignWeights(data: Data(bytes), path: "x.pth")
                return "read"
            } catch { return "\(error)" }
        }
        // os.system("echo pwned"), as pickle.dumps writes a __reduce__ returning it
        let evil = [0x80, 0x02] + Array("cposix\nsystem\nX".utf8) + [10, 0, 0, 0] + Array("echo pwned".utf8)
        #expect(problem(evil + [0x85, 0x52, 0x2E]).contains("names posix.system"))
        // torch.save(model): the whole module, not its state dict
        let module = [0x80, 0x02] + Array("ctorch.nn.modules.conv\nConv3d\n".utf8) + [0x29, 0x81, 0x2E]
        #expect(problem(module).contains("names torch.nn.modules.conv.Conv3d"))
        #expect(problem(module).contains("save model.state_dict() instead"))
        #expect(problem([0x80, 0x02, 0x7D, 0x71]).contains("ends inside the pickle"))
        #expect(problem([0x80, 0x02, 0x7D, 0x2E]).contains("without a state dict"))
        #expect(problem([0x50, 0x4B, 0x03, 0x04, 0, 0]).contains("no end-of-central-directory record"))
    }
}
