import Foundation
import NLTrain
import NLData
import NLLayers
import NLModels
import NLTensor
import NLVideo

/// A TensorBoard event file read back, for the tests: its events' steps, scalars, texts, file
/// version and session starts, from the records (EventRecord) and a small protocol-buffer reader.
public struct ReadEvent: Equatable, Sendable {
    public var step = 0
    public var fileVersion: String?
    public var sessionStart = false
    public var scalars: [String: Float] = [:]
    public var texts: [String: String] = [:]
    public var images: [String: ReadImage] = [:]
}

/// A picture of an event (Summary.Value.image).
public struct ReadImage: Equatable, Sendable {
    public var width = 0, height = 0, colorspace = 0
    public var png = Data()
}

public func readEventFile(_ path: String) throws -> [ReadEvent] {
    try EventRecord.records(Data(contentsOf: URL(fileURLWithPath: path))).map(parseEvent)
}

func parseEvent(_ data: Data) -> ReadEvent {
    var event = ReadEvent()
    for (field, value) in protoFields(data) {
        switch (field, value) {
        case (2, .varint(let v)): event.step = Int(v)
        case (3, .bytes(let b)): event.fileVersion = String(decoding: b, as: UTF8.self)
        // session_log: START
        case (7, .bytes(let b)): event.sessionStart = protoFields(b).contains { $0.0 == 1 && $0.1 == .varint(1) }
        case (5, .bytes(let summary)):
            for case (1, .bytes(let value)) in protoFields(summary) {
                var tag = "", simple: Float?, text: String?, image: ReadImage?
                for (f, v) in protoFields(value) {
                    switch (f, v) {
                    case (1, .bytes(let b)): tag = String(decoding: b, as: UTF8.self)
                    case (2, .fixed32(let bits)): simple = Float(bitPattern: bits)
                    case (8, .bytes(let tensor)):
                        for case (8, .bytes(let s)) in protoFields(tensor) { text = String(decoding: s, as: UTF8.self) }
                    case (4, .bytes(let picture)):
                        var read = ReadImage()
                        for (g, w) in protoFields(picture) {
                            switch (g, w) {
                            case (1, .varint(let v)): read.height = Int(v)
                            case (2, .varint(let v)): read.width = Int(v)
                            case (3, .varint(let v)): read.colorspace = Int(v)
                            case (4, .bytes(let b)): read.png = b
                            default: break
                            }
                        }
                        image = read
                    default: break
                    }
                }
                if let simple { event.scalars[tag] = simple }
                if let text { event.texts[tag] = text }
                if let image { event.images[tag] = image }
            }
        default: break
        }
    }
    return event
}

enum ProtoValue: Equatable { case varint(UInt64), fixed64(UInt64), fixed32(UInt32), bytes(Data) }

/// The (field, value) pairs of one protocol-buffer message.
func protoFields(_ data: Data) -> [(Int, ProtoValue)] {
    var fields: [(Int, ProtoValue)] = [], i = data.startIndex
    func varint() -> UInt64 {
        var value: UInt64 = 0, shift: UInt64 = 0
        while i < data.endIndex {
            let byte = data[i]; i += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { break }
            shift += 7
        }
        return value
    }
    func fixed(_ n: Int) -> UInt64 {
        let v = data[i..<min(i + n, data.endIndex)].enumerated().reduce(UInt64(0)) {
            $0 | UInt64($1.element) << (8 * UInt64($1.offset))
        }
        i += n
        return v
    }
    while i < data.endIndex {
        let key = varint(), field = Int(key >> 3)
        switch key & 7 {
        case 0: fields.append((field, .varint(varint())))
        case 1: fields.append((field, .fixed64(fixed(8))))
        case 5: fields.append((field, .fixed32(UInt32(fixed(4)))))
        case 2:
            let n = Int(varint()), end = min(i + n, data.endIndex)
            fields.append((field, .bytes(Data(data[i..<end]))))
            i = end
        default: return fields
        }
    }
    return fields
}
