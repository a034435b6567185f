import Foundation

/// The Python names a weights file may give, and what calling them would return, computed here
/// without Python: ordered dicts, PyTorch's tensor-rebuilding functions and storages, numpy's
/// arrays, dtypes and scalars, and a few classes of training metadata (mmengine's message hub),
/// kept as inert data. Any other name is refused before anything is built: a checkpoint from the
/// internet is untrusted input, and a pickle that names os.system is an attack, not weights.
struct PickleGlobals {
    let path: String

    /// Functions and classes whose result this file computes.
    static let known: Set<String> = [
        "collections.OrderedDict", "collections.Counter", "builtins.set", "builtins.frozenset",
        "builtins.bytearray", "builtins.getattr", "builtins.object", "_codecs.encode", "copyreg._reconstructor",
        "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state", "torch.Size", "torch.device",
        "numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype", "numpy.core.multiarray.scalar",
        "numpy.core.numeric._frombuffer",
    ]

    /// PyTorch's storage classes, as its persistent ids name them, and their element types.
    static let storages: [String: PickleElement] = [
        "torch.HalfStorage": .f16, "torch.BFloat16Storage": .bf16, "torch.FloatStorage": .f32,
        "torch.DoubleStorage": .f64, "torch.CharStorage": .i8, "torch.ByteStorage": .u8, "torch.ShortStorage": .i16,
        "torch.IntStorage": .i32, "torch.LongStorage": .i64, "torch.BoolStorage": .bool, "torch.UntypedStorage": .u8,
    ]

    /// PyTorch's dtypes (torch.float32), which _rebuild_tensor_v3 names.
    static let dtypes: [String: PickleElement] = [
        "torch.float16": .f16, "torch.half": .f16, "torch.bfloat16": .bf16, "torch.float32": .f32, "torch.float": .f32,
        "torch.float64": .f64, "torch.double": .f64, "torch.int8": .i8, "torch.uint8": .u8, "torch.int16": .i16,
        "torch.int32": .i32, "torch.int64": .i64, "torch.long": .i64, "torch.bool": .bool,
    ]

    /// Classes of training metadata that checkpoints carry beside the weights (mmengine's loss
    /// history, configs): kept as their arguments and state, never constructed.
    static let inert: Set<String> = [
        "mmengine.logging.history_buffer.HistoryBuffer", "mmengine.logging.message_hub.MessageHub",
        "mmengine.config.config.ConfigDict", "mmcv.utils.config.ConfigDict", "mmcv.Config",
        "argparse.Namespace", "builtins.object",
    ]

    /// Python 2's names of modules that Python 3 renamed, and numpy 2's of numpy 1's.
    static func canonical(_ module: String) -> String {
        switch module {
        case "__builtin__": "builtins"
        case "copy_reg": "copyreg"
        case "numpy._core.multiarray": "numpy.core.multiarray"
        case "numpy._core.numeric": "numpy.core.numeric"
        default: module
        }
    }

    func refuse(_ what: String, at offset: Int) -> SafeTensorsError {
        let wholeModel =
            what.hasPrefix("torch.nn.")
            ? " (a whole model, saved with torch.save(model)? save model.state_dict() instead)" : ""
        return SafeTensorsError(
            path: path,
            problem:
                "refused: its pickle names \(what) (pickle byte \(offset)), which is not one of the classes a state dict "
                + "needs; loading it in Python would call it, so nothing of this file is used\(wholeModel)")
    }

    func fail(_ problem: String, at offset: Int) -> SafeTensorsError {
        SafeTensorsError(path: path, problem: "\(problem) (pickle byte \(offset))")
    }

    /// GLOBAL and STACK_GLOBAL: the name, if it is allowed.
    func resolve(module: String, name: String, at offset: Int) throws -> PickleValue {
        let qualified = "\(Self.canonical(module)).\(name)"
        guard
            Self.known.contains(qualified) || Self.storages[qualified] != nil || Self.dtypes[qualified] != nil
                || Self.inert.contains(qualified)
        else { throw refuse(qualified, at: offset) }
        return .global(module: Self.canonical(module), name: name)
    }

    /// REDUCE: what calling `callable` with `arguments` returns.
    func call(_ callable: PickleValue, _ arguments: [PickleValue], at offset: Int) throws -> PickleValue {
        guard case .global(let module, let name) = callable else {
            throw fail("REDUCE of something not a name", at: offset)
        }
        let qualified = "\(module).\(name)", a = arguments
        func argument(_ i: Int) throws -> PickleValue {
            guard i < a.count else { throw fail("\(qualified) is given \(a.count) arguments", at: offset) }
            return a[i]
        }
        switch qualified {
        case "collections.OrderedDict", "collections.Counter":
            let items = try a.first.map { try entriesOf($0, qualified, offset) } ?? []
            return .dict(PickleDict(items))
        case "builtins.set", "builtins.frozenset":
            return .list(PickleList(a.first?.elements ?? []))
        case "builtins.bytearray":
            if case .bytes(let d) = a.first ?? .none { return .bytes(d) }
            return a.isEmpty ? .bytes(Data()) : try latin1(try argument(0), offset)
        case "_codecs.encode":  // how protocol 2 writes Python 3 bytes: encode(text, "latin1")
            return try latin1(try argument(0), offset)
        case "builtins.getattr":  // a method of an inert class (mmengine's statistics methods)
            guard case .global(let m, let n) = try argument(0), Self.inert.contains("\(m).\(n)"),
                let attribute = try argument(1).text
            else { throw refuse("getattr(\(a.map(describe).joined(separator: ", ")))", at: offset) }
            return .global(module: m, name: "\(n).\(attribute)")
        case "copyreg._reconstructor":  // protocol 0 and 1's objects: (class, base, state)
            return try instantiate(try argument(0), [], at: offset)
        case "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3":
            var storage = try storageOf(try argument(0), offset)
            if qualified.hasSuffix("v3") {
                guard case .global(let m, let n) = try argument(6), let element = Self.dtypes["\(m).\(n)"] else {
                    throw fail("_rebuild_tensor_v3 without a dtype", at: offset)
                }
                storage.count = storage.count * storage.element.size / element.size
                storage.element = element
            }
            return .tensor(try tensor(storage, try argument(1), try argument(2), try argument(3), offset))
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard case .tensor = try argument(0) else {
                throw fail("\(qualified) of something not a tensor", at: offset)
            }
            return a[0]
        case "torch.Size":
            return .tuple(try argument(0).elements ?? [])
        case "torch.device":
            return .string(try argument(0).text ?? "cpu")
        case "numpy.core.multiarray._reconstruct":  // an empty array that BUILD then fills
            return .object(PickleObject(type: "numpy.ndarray", arguments: a))
        case "numpy.dtype":
            let object = PickleObject(type: "numpy.dtype", arguments: a)
            object.element = try numpyElement(try argument(0).text ?? "", offset)
            return .object(object)
        case "numpy.core.multiarray.scalar":  // a numpy number: (dtype, its bytes)
            guard let element = try dtypeObject(try argument(0), offset).element,
                let raw = try dataOf(try argument(1)), raw.count == element.size
            else { throw fail("a numpy scalar that is not a number", at: offset) }
            return Self.number(raw, element)
        case "numpy.core.numeric._frombuffer":  // protocol 5's arrays: (buffer, dtype, shape, order)
            guard let raw = try dataOf(try argument(0)), let element = try dtypeObject(try argument(1), offset).element
            else { throw fail("a numpy buffer without bytes or dtype", at: offset) }
            let array = PickleObject(type: "numpy.ndarray", arguments: [])
            array.tensor = try inlineArray(
                raw, element, shape: try argument(2), fortran: try argument(3).text == "F", offset)
            return .object(array)
        default:
            if Self.inert.contains(qualified) { return .object(PickleObject(type: qualified, arguments: a)) }
            throw refuse("a call of \(qualified)", at: offset)
        }
    }

    /// NEWOBJ, INST, OBJ: an instance of `type`.
    func instantiate(_ type: PickleValue, _ arguments: [PickleValue], at offset: Int) throws -> PickleValue {
        guard case .global(let module, let name) = type else {
            throw fail("an instance of something not a class", at: offset)
        }
        let qualified = "\(module).\(name)"
        switch qualified {
        case "collections.OrderedDict", "collections.Counter": return .dict(PickleDict())
        case "builtins.set", "builtins.frozenset": return .list(PickleList(arguments.first?.elements ?? []))
        default:
            guard Self.inert.contains(qualified) else { throw refuse("an instance of \(qualified)", at: offset) }
            return .object(PickleObject(type: qualified, arguments: arguments))
        }
    }

    /// BUILD: `object` given `state`. Numpy arrays and dtypes take their meaning from it; other
    /// objects keep it as data; a dict's attributes (PyTorch's state-dict _metadata) are dropped.
    func build(_ object: PickleValue, state: PickleValue, at offset: Int) throws {
        guard case .object(let o) = object else { return }
        o.state = state
        let s = state.elements ?? []
        switch o.type {
        case "numpy.ndarray":  // (version, shape, dtype, is_fortran, raw bytes)
            guard s.count == 5, let element = try dtypeObject(s[2], offset).element, let raw = try dataOf(s[4]) else {
                throw fail("a numpy array whose state is not (version, shape, dtype, order, bytes)", at: offset)
            }
            o.tensor = try inlineArray(raw, element, shape: s[1], fortran: s[3].int == 1, offset)
        case "numpy.dtype":  // (version, byte order, ...)
            if s.count > 1, s[1].text == ">", let element = o.element, element.size > 1 {
                throw fail("a big-endian \(element.rawValue) array; only little-endian files are read", at: offset)
            }
        default: break
        }
    }

    // MARK: Helpers

    func entriesOf(
        _ value: PickleValue, _ what: String, _ offset: Int
    ) throws -> [(key: PickleValue, value: PickleValue)] {
        if let entries = value.entries { return entries }
        return try (value.elements ?? []).map { pair in
            guard let kv = pair.elements, kv.count == 2 else {
                throw fail("\(what) of something not pairs", at: offset)
            }
            return (kv[0], kv[1])
        }
    }

    func describe(_ value: PickleValue) -> String {
        switch value {
        case .global(let m, let n): "\(m).\(n)"
        default: value.text.map { "'\($0)'" } ?? "..."
        }
    }

    func latin1(_ value: PickleValue, _ offset: Int) throws -> PickleValue {
        guard let text = value.text else { throw fail("encode of something not text", at: offset) }
        var out = Data(capacity: text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            guard scalar.value < 256 else { throw fail("bytes given as text beyond Latin-1", at: offset) }
            out.append(UInt8(scalar.value))
        }
        return .bytes(out)
    }

    func dataOf(_ value: PickleValue) throws -> Data? {
        switch value {
        case .bytes(let d), .legacyString(let d): d
        case .string(let s):
            s.unicodeScalars.allSatisfy({ $0.value < 256 }) ? Data(s.unicodeScalars.map { UInt8($0.value) }) : nil
        default: nil
        }
    }

    func storageOf(_ value: PickleValue, _ offset: Int) throws -> PickleStorage {
        guard case .storage(let storage) = value else {
            throw fail("a tensor whose storage is not a storage", at: offset)
        }
        return storage
    }

    func dtypeObject(_ value: PickleValue, _ offset: Int) throws -> PickleObject {
        guard case .object(let o) = value, o.type == "numpy.dtype" else {
            throw fail("a numpy array without a numpy dtype", at: offset)
        }
        return o
    }

    /// numpy's type codes ("f4", "<f4", "float32") as element types.
    func numpyElement(_ code: String, _ offset: Int) throws -> PickleElement {
        let codes: [String: PickleElement] = [
            "f2": .f16, "f4": .f32, "f8": .f64, "i1": .i8, "u1": .u8, "i2": .i16, "i4": .i32, "i8": .i64, "b1": .bool,
        ]
        let trimmed =
            code.hasPrefix("<") || code.hasPrefix("|") || code.hasPrefix("=") ? String(code.dropFirst()) : code
        guard let element = codes[trimmed] ?? PickleElement(rawValue: trimmed) else {
            throw fail("numpy dtype '\(code)', which is not a number type weights use", at: offset)
        }
        return element
    }

    /// The tensor of `storage` from `offset` with `size` and `stride`, all of it inside the storage.
    func tensor(
        _ storage: PickleStorage, _ offset: PickleValue, _ size: PickleValue, _ stride: PickleValue, _ at: Int
    )
        throws -> PickleTensor
    {
        guard let start = offset.int, let shape = size.elements?.compactMap(\.int),
            let strides = stride.elements?.compactMap(\.int), shape.count == size.elements?.count,
            strides.count == shape.count, start >= 0, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 })
        else { throw fail("a tensor whose offset, size or stride is not non-negative integers", at: at) }
        let tensor = PickleTensor(storage: storage, offset: start, shape: shape, strides: strides)
        if tensor.count > 0 {
            let (last, overflow) = zip(shape, strides).reduce((start, false)) { r, d in
                let (m, o1) = (d.0 - 1).multipliedReportingOverflow(by: d.1)
                let (s, o2) = r.0.addingReportingOverflow(m)
                return (s, r.1 || o1 || o2)
            }
            guard !overflow, last < storage.count else {
                throw fail(
                    "a tensor of shape \(shape) needs element \(overflow ? "beyond 2^63" : String(last)) of a storage of "
                        + "\(storage.count) (storage '\(storage.key)'): the storage is shorter than its tensor", at: at)
            }
        }
        return tensor
    }

    func inlineArray(
        _ raw: Data, _ element: PickleElement, shape: PickleValue, fortran: Bool, _ offset: Int
    ) throws
        -> PickleTensor
    {
        guard let dims = shape.elements?.compactMap(\.int), dims.count == shape.elements?.count,
            dims.allSatisfy({ $0 >= 0 })
        else { throw fail("a numpy array whose shape is not integers", at: offset) }
        let count = dims.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
        guard count < Int.max / 8, raw.count == count * element.size else {
            throw fail("a numpy array of shape \(dims) (\(element.rawValue)) with \(raw.count) bytes", at: offset)
        }
        let storage = PickleStorage(element: element, key: "inline", offset: 0, count: count, inline: raw)
        let strides =
            fortran
            ? Array(PickleTensor.contiguousStrides(dims.reversed()).reversed()) : PickleTensor.contiguousStrides(dims)
        return PickleTensor(storage: storage, offset: 0, shape: dims, strides: strides)
    }

    static func number(_ raw: Data, _ element: PickleElement) -> PickleValue {
        let bits = raw.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        switch element {
        case .f64: return .float(Double(bitPattern: bits))
        case .f32: return .float(Double(Float(bitPattern: UInt32(bits))))
        case .f16: return .float(Double(Float(Float16(bitPattern: UInt16(bits)))))
        case .bf16: return .float(Double(Float(bitPattern: UInt32(bits) << 16)))
        case .bool: return .bool(bits != 0)
        case .u8: return .int(Int(bits))
        case .i8: return .int(Int(Int8(truncatingIfNeeded: bits)))
        case .i16: return .int(Int(Int16(truncatingIfNeeded: bits)))
        case .i32: return .int(Int(Int32(truncatingIfNeeded: bits)))
        case .i64: return .int(Int(Int64(bitPattern: bits)))
        }
    }
}
