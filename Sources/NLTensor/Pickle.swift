import Foundation

/// A value of a Python pickle, as far as weights files need: numbers, text, containers, and the
/// arrays of PyTorch and numpy. Dicts and lists are shared objects (`PickleList`, `PickleDict`),
/// as in Python: a pickle fills a container after putting it in its memo.
public indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer beyond 64 bits, as little-endian two's complement (torch.save's magic number).
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    /// A Python 2 `str`: bytes that are text when used as text (decoded as Latin-1, as Python 3's
    /// pickle.load(encoding="latin1") does) and data when used as data (an array's raw bytes).
    case legacyString(Data)
    case bytes(Data)
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// A function or class the pickle names: allowed (PickleGlobals), never called.
    case global(module: String, name: String)
    /// An instance of a class kept as inert data (its arguments and state), never constructed.
    case object(PickleObject)
    case storage(PickleStorage)
    case tensor(PickleTensor)

    public var text: String? {
        switch self {
        case .string(let s): s
        case .legacyString(let d): String(data: d, encoding: .isoLatin1)
        default: nil
        }
    }

    public var int: Int? {
        switch self {
        case .int(let i): i
        case .bool(let b): b ? 1 : 0
        default: nil
        }
    }

    /// The elements of a tuple or list.
    public var elements: [PickleValue]? {
        switch self {
        case .tuple(let items): items
        case .list(let list): list.items
        default: nil
        }
    }

    /// The entries of a dict (or of an object's state dict), in their order.
    public var entries: [(key: PickleValue, value: PickleValue)]? {
        switch self {
        case .dict(let dict): dict.entries
        default: nil
        }
    }

    /// The value under the text key `key` of a dict.
    public subscript(key: String) -> PickleValue? {
        entries?.first { $0.key.text == key }?.value
    }

    /// The array of a tensor, or of a numpy array (an object whose state made one).
    public var tensor: PickleTensor? {
        switch self {
        case .tensor(let t): t
        case .object(let o): o.tensor
        default: nil
        }
    }
}

public final class PickleList {
    public var items: [PickleValue]
    init(_ items: [PickleValue] = []) { self.items = items }
}

public final class PickleDict {
    public var entries: [(key: PickleValue, value: PickleValue)]
    init(_ entries: [(key: PickleValue, value: PickleValue)] = []) { self.entries = entries }
}

/// An instance of an allowed class, as data: `PickleGlobals` turns the ones with a meaning (numpy's
/// arrays and dtypes) into `tensor` or `element` once their state arrives.
public final class PickleObject {
    public let type: String
    public let arguments: [PickleValue]
    public var state: PickleValue = .none
    public var tensor: PickleTensor?
    public var element: PickleElement?
    init(type: String, arguments: [PickleValue]) { (self.type, self.arguments) = (type, arguments) }
}

/// The scalar types of PyTorch storages and numpy arrays.
public enum PickleElement: String, Sendable {
    case f16 = "float16", bf16 = "bfloat16", f32 = "float32", f64 = "float64"
    case i8 = "int8", u8 = "uint8", i16 = "int16", i32 = "int32", i64 = "int64", bool

    public var size: Int {
        switch self {
        case .i8, .u8, .bool: 1
        case .f16, .bf16, .i16: 2
        case .f32, .i32: 4
        case .f64, .i64: 8
        }
    }

    /// The safetensors type that holds it, if the project reads that type.
    public var safeTensorsType: SafeTensors.DType? {
        switch self {
        case .f16: .f16
        case .bf16: .bf16
        case .f32: .f32
        case .f64: .f64
        case .i64: .i64
        case .u8, .bool: .u8
        default: nil
        }
    }
}

/// A flat block of elements: a PyTorch storage, whose bytes the file holds elsewhere (`key`),
/// or the inline bytes of a numpy array.
public struct PickleStorage {
    public var element: PickleElement
    public var key: String
    /// The element at which this storage starts in the one named `key` (a legacy view).
    public var offset: Int
    public var count: Int
    public var inline: Data?
}

/// An array: `shape` elements of `storage` from `offset` with `strides` (in elements).
public struct PickleTensor {
    public var storage: PickleStorage
    public var offset: Int
    public var shape: [Int]
    public var strides: [Int]

    public var count: Int { shape.reduce(1, *) }

    /// Row-major strides of `shape`.
    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        for i in stride(from: shape.count - 2, through: 0, by: -1) {
            strides[i] = strides[i + 1] * max(shape[i + 1], 1)
        }
        return strides
    }
}
