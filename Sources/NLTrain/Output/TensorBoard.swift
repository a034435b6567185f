import Foundation
import Synchronization
import NLData
import NLLayers
import NLModels
import NLTensor
import NLVideo

/// TensorBoard event files, written natively: what `tensorboard --logdir` reads, with no
/// TensorFlow or protobuf tooling. A file is a sequence of records,
///
///     length (UInt64, little-endian) | masked CRC32C of those 8 bytes | data | masked CRC32C of data
///
/// each holding one `Event` protocol buffer (tensorflow/core/util/event.proto): a wall time, a step
/// and a file version, a summary (scalars; text through the text plugin's tensor) or a session
/// log. Each record goes to the file in one write, so a crash leaves every earlier record readable.
public final class EventFileWriter {
    public let path: String
    private let handle: FileHandle

    /// Files this process has opened: part of the name, so two runs within a second differ.
    private static let opened = Atomic<Int>(0)

    /// A new file in `directory` (made if needed), named as TensorBoard's own writers name theirs.
    /// `resumingAt` (a resumed run's first step) writes a session start there: TensorBoard then
    /// drops what earlier files logged from that step on, so no step appears twice.
    public init(directory: String, resumingAt step: Int? = nil) throws {
        try Files.makeDirectory(directory, what: "TensorBoard folder")
        let host = ProcessInfo.processInfo.hostName
        let serial = Self.opened.add(1, ordering: .relaxed).newValue
        path = "\(directory)/events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(host).\(getpid()).\(serial)"
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let handle = FileHandle(forWritingAtPath: path)
        else {
            throw FileError(path, "cannot create the TensorBoard event file")
        }
        self.handle = handle
        write(Event.fileVersion())
        if let step { write(Event.sessionStart(step: step)) }
    }

    deinit { try? handle.close() }

    /// Scalars under their tags ("train/loss") at `step`.
    public func scalars(_ values: [(tag: String, value: Double)], step: Int) {
        write(Event.scalars(values, step: step))
    }

    /// Text under `tag` (shown by TensorBoard's text plugin, as Markdown) at `step`.
    public func text(_ text: String, tag: String, step: Int) {
        write(Event.text(text, tag: tag, step: step))
    }

    /// A PNG picture under `tag` (TensorBoard's images tab) at `step`.
    public func image(png: Data, width: Int, height: Int, tag: String, step: Int) {
        write(Event.image(png: png, width: width, height: height, tag: tag, step: step))
    }

    /// One record in one write. A failing write (a full disk) loses the record, not the run.
    private func write(_ event: Data) {
        try? handle.write(contentsOf: EventRecord.frame(event))
    }
}

/// The record framing of event files (TFRecord) and its checksum.
public enum EventRecord {
    /// One record holding `data`.
    public static func frame(_ data: Data) -> Data {
        var record = Data()
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian) { Data($0) }
        record.append(length)
        record.append(littleEndian(maskedCRC32C(length)))
        record.append(data)
        record.append(littleEndian(maskedCRC32C(data)))
        return record
    }

    /// The records of a file's bytes (a last record cut short by a crash is left out).
    public static func records(_ bytes: Data) -> [Data] {
        var records: [Data] = [], at = bytes.startIndex
        while at + 12 <= bytes.endIndex {
            let length = bytes[at..<(at + 8)].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            let start = at + 12
            guard length >= 0, start + length + 4 <= bytes.endIndex else { break }
            records.append(bytes[start..<(start + length)])
            at = start + length + 4
        }
        return records
    }

    /// CRC-32C (Castagnoli), as TFRecord uses it.
    public static func crc32c(_ data: Data) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    /// The CRC rotated and offset, as TFRecord stores it.
    public static func maskedCRC32C(_ data: Data) -> UInt32 {
        let crc = crc32c(data)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    private static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
        return c
    }

    private static func littleEndian(_ value: UInt32) -> Data { withUnsafeBytes(of: value.littleEndian) { Data($0) } }
}

/// The few Event messages the writer needs, in protocol-buffer wire format.
enum Event {
    static func fileVersion() -> Data {
        event(step: 0) { $0.string(3, "brain.Event:2") }
    }

    /// SessionLog { status: START } at `step` (Event.session_log, field 7; field 6 is the
    /// deprecated log_message, which TensorBoard shows nowhere and purges nothing for). On it,
    /// TensorBoard drops what earlier files logged at this step and later: a run resumed from a
    /// checkpoint shows each step once.
    static func sessionStart(step: Int) -> Data {
        event(step: step) { $0.message(7) { $0.varint(1, 1) } }
    }

    /// Summary { value: [{ tag, simple_value }] } (Event.summary, field 5).
    static func scalars(_ values: [(tag: String, value: Double)], step: Int) -> Data {
        event(step: step) { e in
            e.message(5) { summary in
                for (tag, value) in values {
                    summary.message(1) {
                        $0.string(1, tag); $0.fixed32(2, Float(value).bitPattern)
                    }
                }
            }
        }
    }

    /// A string tensor with the text plugin's metadata (what tf.summary.text writes).
    static func text(_ text: String, tag: String, step: Int) -> Data {
        event(step: step) { e in
            e.message(5) { summary in
                summary.message(1) { value in
                    value.string(1, tag)
                    value.message(9) { metadata in metadata.message(1) { $0.string(1, "text") } }
                    value.message(8) { tensor in
                        tensor.varint(1, 7)  // DT_STRING
                        tensor.message(2) { _ in }  // a scalar's shape
                        tensor.bytes(8, Data(text.utf8))  // string_val
                    }
                }
            }
        }
    }

    /// Summary { value: [{ tag, image: { height, width, colorspace: 3 (RGB), encoded_image_string } }] }
    /// (Summary.Value.image, field 4): what tf.summary.image wrote before TensorFlow 2.
    static func image(png: Data, width: Int, height: Int, tag: String, step: Int) -> Data {
        event(step: step) { e in
            e.message(5) { summary in
                summary.message(1) { value in
                    value.string(1, tag)
                    value.message(4) { image in
                        image.varint(1, UInt64(height)); image.varint(2, UInt64(width)); image.varint(3, 3)
                        image.bytes(4, png)
                    }
                }
            }
        }
    }

    private static func event(step: Int, _ what: (inout ProtoWriter) -> Void) -> Data {
        var e = ProtoWriter()
        e.fixed64(1, Date().timeIntervalSince1970.bitPattern)
        e.varint(2, UInt64(max(step, 0)))
        what(&e)
        return e.data
    }
}

/// Protocol-buffer wire format, writing: varints, fixed 32 and 64-bit fields, length-delimited
/// bytes and nested messages.
struct ProtoWriter {
    var data = Data()

    mutating func varint(_ field: Int, _ value: UInt64) {
        tag(field, 0)
        rawVarint(value)
    }

    mutating func fixed32(_ field: Int, _ value: UInt32) {
        tag(field, 5)
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }

    mutating func fixed64(_ field: Int, _ value: UInt64) {
        tag(field, 1)
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }

    mutating func bytes(_ field: Int, _ value: Data) {
        tag(field, 2)
        rawVarint(UInt64(value.count))
        data.append(value)
    }

    mutating func string(_ field: Int, _ value: String) { bytes(field, Data(value.utf8)) }

    mutating func message(_ field: Int, _ body: (inout ProtoWriter) -> Void) {
        var inner = ProtoWriter()
        body(&inner)
        bytes(field, inner.data)
    }

    private mutating func tag(_ field: Int, _ wireType: UInt64) { rawVarint(UInt64(field) << 3 | wireType) }

    private mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            data.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        data.append(UInt8(v))
    }
}
