import CFFmpeg

/// A file cut short (a download or a copy that stopped) keeps its container's promises: an MP4's
/// sample table lists every frame, a Matroska or WebM header gives the duration. Reading it, the
/// demuxer logs an error ("partial file", "File ended prematurely") or the sample table lists
/// frames that were never read. This says how many frames are there, of how many.
struct Truncation {
    /// FFmpeg's words, or what the index promised.
    let evidence: String
    /// Frames the container promised, and whether that count is exact (a sample table) or
    /// estimated from its duration.
    let expected: Int
    let exact: Bool

    /// The truncation of a file whose index pass read `framesRead` packets of `stream` and met
    /// `damage`; nil when the file is whole.
    init?(
        format: UnsafeMutablePointer<AVFormatContext>, stream: UnsafeMutablePointer<AVStream>, framesRead: Int,
        damage: String?
    ) {
        let listed = Int(avformat_index_get_entries_count(stream))
        // Only the MP4 family's index lists every frame; Matroska's cues list keyframes.
        let fullIndex = String(cString: format.pointee.iformat.pointee.name).hasPrefix("mov,")
        let unread = fullIndex && listed > framesRead
        guard damage != nil || unread else { return nil }
        let rate = stream.pointee.avg_frame_rate, seconds = format.pointee.duration
        let promised =
            rate.num > 0 && rate.den > 0 && seconds > 0
            ? Int((Double(seconds) / Double(AV_TIME_BASE) * av_q2d(rate)).rounded()) : 0
        (expected, exact) = fullIndex && listed >= promised ? (listed, true) : (promised, false)
        evidence = damage.map { "FFmpeg: \($0)" } ?? "its index lists \(listed) frames"
    }

    /// "truncated: 26 of 100 frames are there (FFmpeg: partial file)".
    func describe(framesThere: Int) -> String {
        let count = framesThere == 0 ? "none of" : "\(framesThere) of"
        let what =
            expected > framesThere
            ? "\(count) \(exact ? "" : "about ")\(expected) frames are there"
            : "the file ends after frame \(framesThere - 1)"
        return "truncated: \(what) (\(evidence))"
    }
}
