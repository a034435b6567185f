import Foundation

/// One line of `nlvideo probe`: a video's metadata, or why it cannot be read.
public struct ProbeLine: Codable, Sendable {
    public var path: String
    public var frames: Int?
    public var fps: Double?
    public var duration: Double?
    public var width: Int?
    public var height: Int?
    public var rotation: Int?
    public var codec: String?
    /// Why the file cannot be read, or, for a truncated file whose frames there are readable, what is missing.
    public var error: String?

    /// Opens `path` and describes it; a file that cannot be read gives a line with `error`.
    public init(path: String) {
        self.path = path
        do {
            let info = try VideoReader(path: path).info
            (frames, fps, duration) = (info.frames, info.fps, info.duration)
            (width, height, rotation, codec) = (info.width, info.height, info.rotation, info.codec)
            error = info.truncation
        } catch {
            self.error = error.message
        }
    }

    /// The line as compact JSON with sorted keys.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }
}
