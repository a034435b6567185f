import Foundation

/// A weights file made with Python's pickle, read without Python (PickleReader):
/// - torch.save's zip archive (PyTorch 1.6 and later): `<name>/data.pkl` holds the object, whose
///   tensors name their storages by key, each stored as `<name>/data/<key>`;
/// - torch.save's older format, which most 2020 model-zoo files use: pickles one after another
///   (a magic number, the protocol 1001, the machine's byte order, the object, the storage keys),
///   then each storage as an int64 element count and its bytes;
/// - a plain pickle of numpy arrays (Caffe2's blob files: {"blobs": {name: array}}).
public struct PickledWeights {
    public let path: String
    /// What the file holds: a state dict, mmengine's {"meta", "state_dict", ...}, Caffe2's blobs.
    public let object: PickleValue
    /// Which of the formats above, in words.
    public let format: String
    /// Each storage's bytes, by key.
    private var storages: [String: Data] = [:]

    /// torch.save's older format starts with this number, pickled.
    static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    public init(data: Data, path: String) throws {
        self.path = path
        func fail(_ problem: String) -> SafeTensorsError { SafeTensorsError(path: path, problem: problem) }
        if data.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            let archive = try ZipArchive(data: data, path: path)
            let pickles = archive.names.filter { $0.hasSuffix("/data.pkl") || $0 == "data.pkl" }
            guard pickles.count == 1, let pickle = archive.contents(pickles[0]) else {
                throw fail("a zip archive without exactly one data.pkl: not a file torch.save wrote")
            }
            let folder = String(pickles[0].dropLast("data.pkl".count))
            var found: [String: Data] = [:]
            object = try PickleReader.read(pickle, path: path) { id in
                let storage = try Self.storage(id, path: path)
                guard let bytes = archive.contents("\(folder)data/\(storage.key)") else {
                    throw fail("storage \(storage.key) is missing from the archive (no \(folder)data/\(storage.key))")
                }
                found[storage.key] = bytes
                return .storage(storage)
            }.value
            format = "a zip archive torch.save wrote"
            storages = found
            return
        }
        let first = try PickleReader.read(data, path: path)
        guard case .bigInt(let magic) = first.value, magic == Self.legacyMagic else {
            (object, format) = (first.value, "a pickle")
            return
        }
        // torch.save's older format
        var at = first.end
        let version = try PickleReader.read(data, at: at, path: path)
        let info = try PickleReader.read(data, at: version.end, path: path)
        guard version.value.int == 1001 else {
            throw fail("torch.save's older format, version \(version.value) (not 1001)")
        }
        if case .bool(false) = info.value["little_endian"] ?? .none {
            throw fail("written on a big-endian machine; only little-endian files are read")
        }
        var declared: [String: PickleStorage] = [:]
        let main = try PickleReader.read(data, at: info.end, path: path) { id in
            let storage = try Self.storage(id, path: path)
            declared[storage.key] = storage
            return .storage(storage)
        }
        object = main.value
        let keys = try PickleReader.read(data, at: main.end, path: path)
        at = keys.end
        for key in keys.value.elements?.compactMap(\.text) ?? [] {
            guard let storage = declared[key] else { throw fail("storage \(key) is listed but no tensor uses it") }
            guard at + 8 <= data.count else { throw fail("the file ends before storage \(key) (truncated?)") }
            let count = (0..<8).reversed().reduce(0) { $0 << 8 | Int(data[data.startIndex + at + $1]) }
            let size = count.multipliedReportingOverflow(by: storage.element.size)
            guard count >= 0, !size.overflow, size.partialValue <= data.count - at - 8 else {
                throw fail("storage \(key) claims \(count) elements, more than the file holds (truncated?)")
            }
            storages[key] = data[(data.startIndex + at + 8)..<(data.startIndex + at + 8 + size.partialValue)]
            at += 8 + size.partialValue
        }
        format = "torch.save's older format"
    }

    /// A storage from its persistent id: ("storage", class, key, location, elements[, view]).
    static func storage(_ id: PickleValue, path: String) throws -> PickleStorage {
        guard let fields = id.elements, fields.count >= 5, fields[0].text == "storage",
            case .global(let module, let name) = fields[1], let key = fields[2].text, let count = fields[4].int,
            count >= 0
        else { throw SafeTensorsError(path: path, problem: "a persistent id that is not a PyTorch storage") }
        guard let element = PickleGlobals.storages["\(module).\(name)"] else {
            throw SafeTensorsError(path: path, problem: "a storage of class \(module).\(name)")
        }
        var storage = PickleStorage(element: element, key: key, offset: 0, count: count, inline: nil)
        if fields.count > 5, let view = fields[5].elements, view.count == 3, let offset = view[1].int,
            let viewCount = view[2].int
        {  // a view into the storage `key` (PyTorch before 1.?), from element `offset`
            (storage.offset, storage.count) = (offset, viewCount)
        }
        return storage
    }

    /// The bytes of `tensor` in row-major order, as a safetensors entry.
    public func entry(_ tensor: PickleTensor, name: String) throws -> SafeTensors.Entry {
        let storage = tensor.storage, size = storage.element.size
        guard let dtype = storage.element.safeTensorsType else {
            throw SafeTensorsError(path: path, problem: "tensor \(name) holds \(storage.element.rawValue), not weights")
        }
        guard let raw = storage.inline ?? storages[storage.key], (storage.offset + storage.count) * size <= raw.count
        else {
            throw SafeTensorsError(
                path: path,
                problem: "tensor \(name): storage \(storage.key) holds fewer bytes than its \(storage.count) elements")
        }
        let base = raw.startIndex + (storage.offset + tensor.offset) * size, count = tensor.count
        if tensor.strides == PickleTensor.contiguousStrides(tensor.shape) || count <= 1 {
            return .init(dtype: dtype, shape: tensor.shape, bytes: Data(raw[base..<(base + count * size)]))
        }
        // A strided view: gather element by element.
        var out = Data(capacity: count * size), index = [Int](repeating: 0, count: tensor.shape.count)
        for _ in 0..<count {
            let at = base + zip(index, tensor.strides).reduce(0) { $0 + $1.0 * $1.1 } * size
            out.append(raw[at..<(at + size)])
            for d in stride(from: index.count - 1, through: 0, by: -1) {
                index[d] += 1
                if index[d] < tensor.shape[d] { break }
                index[d] = 0
            }
        }
        return .init(dtype: dtype, shape: tensor.shape, bytes: out)
    }

    /// The named tensors of `dict` (text keys, tensor or array values), in its order; other
    /// entries are left out.
    public func tensors(of dict: PickleValue) throws -> [(name: String, entry: SafeTensors.Entry)] {
        try (dict.entries ?? []).compactMap { key, value in
            guard let name = key.text, let tensor = value.tensor else { return nil }
            return (name, try entry(tensor, name: name))
        }
    }

    /// The state dict: the object itself when it maps names to tensors, or its "state_dict"
    /// (mmengine, mmcv), "model_state" (PySlowFast) or "model" entry; DataParallel's "module."
    /// prefixes dropped.
    public func stateDict() throws -> SafeTensors {
        let candidates = [object["state_dict"], object["model_state"], object["model"], object].compactMap { $0 }
        guard let dict = candidates.first(where: { ($0.entries ?? []).contains { $0.value.tensor != nil } }) else {
            throw SafeTensorsError(
                path: path,
                problem: "\(format) without a state dict (no tensors under state_dict, model_state or model)")
        }
        var file = SafeTensors()
        for (name, entry) in try tensors(of: dict) {
            file.entries[name.hasPrefix("module.") ? String(name.dropFirst("module.".count)) : name] = entry
        }
        return file
    }
}
