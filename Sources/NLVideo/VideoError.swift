import CFFmpeg

/// Everything that can go wrong reading a video: the path, what kind of problem, and FFmpeg's
/// message. The one error type of NLVideo; FFmpeg's return codes become it here and only here.
public struct VideoError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case missingFile
        /// Not a media file FFmpeg can open (empty, random bytes, text, a header without data).
        case notMedia
        case noVideoStream
        /// Media that is not a video to sample: a still image, a raw stream without timestamps.
        case notVideo
        case noDecoder
        case noDecodableFrame
        /// A requested frame lies past damage in the stream; frames up to `lastGoodIndex` (-1:
        /// none) decoded.
        case damaged(lastGoodIndex: Int)
        /// Frame indices outside the video, or an impossible size.
        case invalidRequest
    }

    public let path: String
    public let kind: Kind
    public let message: String

    public init(path: String, kind: Kind, message: String) {
        self.path = path
        self.kind = kind
        self.message = message
    }

    public var description: String { "\(path): \(message)" }

    /// An error for FFmpeg's return code `code`, with FFmpeg's text for it and the last error FFmpeg
    /// logged on this thread, which often says more ("moov atom not found").
    init(path: String, kind: Kind, doing action: String, code: Int32) {
        var buffer = [UInt8](repeating: 0, count: 256)
        buffer.withUnsafeMutableBufferPointer { b in
            _ = b.withMemoryRebound(to: CChar.self) { av_strerror(code, $0.baseAddress, $0.count) }
        }
        var text = "\(action): \(String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self))"
        if let detail = FFmpegLog.takeLastError(), !text.contains(detail) { text += " (\(detail))" }
        self.init(path: path, kind: kind, message: text)
    }
}

/// FFmpeg's log: silenced, but the last error-level line of each thread is kept for VideoError.
enum FFmpegLog {
    /// Installs the capturing callback; called before the first FFmpeg call of the process.
    static let installed: Void = { cffmpeg_capture_log() }()

    static func takeLastError() -> String? {
        guard let message = cffmpeg_take_last_error() else { return nil }
        let text = String(cString: message).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }
}

import Foundation
