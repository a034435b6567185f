import Foundation
import NLModels
import NLTensor

/// Weights saved by other frameworks, read as the project's own: PyTorch's .pth files (either of
/// torch.save's formats; an mmaction2 or mmengine checkpoint, or a bare state dict)
/// and the paper's Caffe2 .pkl blob files (Caffe2Weights). Nothing in them is run
/// (PickleReader). The model tensors are kept, as float32 (int64 counters as they are): the
/// "backbone." and "cls_head." keys of a recognizer's checkpoint, or every tensor of a file
/// without them (torchvision's 2D ResNets, for nlmodel inflate).
public struct ForeignWeights {
    /// The weights, with metadata: "imported_from" (the format), "source_config" (the config text
    /// mmaction2 or mmengine saved, when there is one) and the class names when the file has them.
    public let weights: SafeTensors
    /// Tensors and blobs of the file that are not model weights (an optimizer, mmaction2's
    /// data_preprocessor, Caffe2's momentum).
    public let leftOut: [String]
    /// The metadata key of the config text the file's framework saved.
    public static let sourceConfigKey = "source_config"

    /// Any weights file: a safetensors file as it is, the others converted.
    public static func load(_ path: String, what: String) throws -> SafeTensors {
        let data = try Files.read(path, what: what)
        guard SafeTensors.pyTorchFormat(of: data) != nil else { return try SafeTensors(data: data, path: path) }
        return try ForeignWeights(data: data, path: path).weights
    }

    public init(data: Data, path: String) throws {
        let file = try PickledWeights(data: data, path: path)
        var weights = SafeTensors(), leftOut: [String] = []
        if let blobs = file.object["blobs"] {
            (weights, leftOut) = try Caffe2Weights.stateDict(blobs: try file.tensors(of: blobs))
            weights.metadata["imported_from"] = "a Caffe2 blob file (\(file.format))"
        } else {
            let state = try file.stateDict()
            let recognizer = state.names.contains { $0.hasPrefix("backbone.") || $0.hasPrefix("cls_head.") }
            for name in state.names {
                if recognizer && !name.hasPrefix("backbone.") && !name.hasPrefix("cls_head.") {
                    leftOut.append(name)
                } else {
                    weights.entries[name] = state.entries[name]
                }
            }
            weights.metadata["imported_from"] = file.format
        }
        for name in weights.names where weights.entries[name]!.dtype.isFloatingPoint {
            if weights.entries[name]!.dtype != .f32 { weights.set(name, weights.tensor(name)!) }
        }
        let meta = file.object["meta"]
        if let config = meta?["config"]?.text ?? meta?["cfg"]?.text {
            weights.metadata[Self.sourceConfigKey] = config
        }
        let classes = meta?["dataset_meta"]?["classes"]?.elements ?? meta?["CLASSES"]?.elements
        if let names = classes?.compactMap(\.text), !names.isEmpty, names.count == classes?.count,
            let json = try? JSONSerialization.data(withJSONObject: names)
        {
            weights.metadata[Checkpoint.classesKey] = String(decoding: json, as: UTF8.self)
        }
        (self.weights, self.leftOut) = (weights, leftOut)
    }
}
