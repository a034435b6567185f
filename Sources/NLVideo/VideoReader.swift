import CFFmpeg
import Foundation

/// What a video holds, from its packet index (not the container's estimates).
public struct VideoInfo: Sendable, Equatable {
    /// Frames in presentation order: one per video packet of the index.
    public let frames: Int
    /// Average frames per second.
    public let fps: Double
    /// Seconds from the first frame's start to the last frame's end.
    public let duration: Double
    /// Coded width and height (before display rotation).
    public let width: Int
    public let height: Int
    /// Degrees to turn the picture clockwise to show it upright (0, 90, 180, 270), from the
    /// stream's display matrix, as phones record it.
    public let rotation: Int
    public let codec: String
    /// The decoder's pixel format, as FFmpeg names it ("yuv420p", "yuv420p10le").
    public let pixelFormat: String
    /// Each frame's presentation time in seconds, in presentation order.
    public let timestamps: [Double]
    /// Set when the file lost data its container promised (a download or copy cut short): how
    /// many frames are there, of how many, and FFmpeg's words. The frames there are readable.
    public let truncation: String?

    /// Width and height as displayed, after rotation.
    public var displaySize: (width: Int, height: Int) { rotation % 180 == 0 ? (width, height) : (height, width) }
}

/// Reads frames of one video file with FFmpeg: it indexes the video packets once, then returns
/// any frames asked for, decoding forward from the nearest keyframe and converting only the
/// frames it returns, straight to RGB at the size asked. One reader is used by one thread at a
/// time; open several for parallel work. The FFmpeg objects are freed in `deinit`.
public final class VideoReader {
    public let path: String
    public let info: VideoInfo

    /// Decoder threads (1: the caller's thread alone; 0: FFmpeg's choice).
    public let threads: Int

    /// Where frames are known to be: keyframes, and how decoded frames map to indices.
    struct Index {
        /// Each keyframe, by presentation index, ascending.
        var keyframes: [Keyframe] = []
        /// Frame index by presentation timestamp; nil when some packets lack one (AVI), and frames
        /// are counted in output order instead: from a keyframe when the stream does not reorder
        /// frames (then decode order is presentation order), else from the start.
        var byTimestamp: [Int64: Int]?
        /// Decode-order position by decoding timestamp, for that counting.
        var byDecodingTimestamp: [Int64: Int] = [:]
    }

    /// A keyframe: its presentation index, the timestamp to seek to it by, and, to check where a
    /// seek landed and to seek again, its decoding timestamp and byte position (when known).
    struct Keyframe {
        let index: Int
        let seekTimestamp: Int64
        let dts: Int64?
        let position: Int64

        init(index: Int, seekTimestamp: Int64, packet: PacketTiming) {
            (self.index, self.seekTimestamp, dts, position) = (index, seekTimestamp, packet.dts, packet.position)
        }
    }

    let index: Index
    let format: UnsafeMutablePointer<AVFormatContext>
    let decoder: UnsafeMutablePointer<AVCodecContext>
    let packet: UnsafeMutablePointer<AVPacket>
    let frame: UnsafeMutablePointer<AVFrame>
    let streamIndex: Int32
    let converter = FrameConverter()
    /// Presentation index of the last frame the decoder gave since the last seek, if it can go on
    /// from there; nil when the next read must seek.
    var position: Int?
    /// Frames whose packets went to the decoder to be skipped since the last seek: going on from
    /// `position` cannot give them.
    var skipped: Set<Int> = []
    /// Whether `packet` holds the stream's first packet after a seek, read to check where the
    /// seek landed and not yet decoded.
    var pending = false

    /// Decoder threads for readers that run in parallel with others (the loader's workers): one.
    public static let defaultThreads = 1

    public init(path: String, threads: Int = VideoReader.defaultThreads) throws(VideoError) {
        FFmpegLog.installed
        self.path = path
        self.threads = max(0, threads)
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw VideoError(path: path, kind: .missingFile, message: "no such file")
        }
        // A FIFO, a device or a socket would block the open or the first read for as long as
        // nothing writes to it (a stand-in for a hung mount): no video is one.
        if status.st_mode & S_IFMT != S_IFREG {
            let what =
                switch status.st_mode & S_IFMT {
                case S_IFIFO: "a FIFO (named pipe)"
                case S_IFDIR: "a directory"
                case S_IFCHR, S_IFBLK: "a device"
                case S_IFSOCK: "a socket"
                default: "not a regular file"
                }
            throw VideoError(path: path, kind: .notMedia, message: "is \(what), not a video file")
        }
        var context: UnsafeMutablePointer<AVFormatContext>?
        let opened = avformat_open_input(&context, path, nil, nil)
        guard opened >= 0, let context else {
            throw VideoError(
                path: path, kind: .notMedia,
                doing: opened == cffmpeg_averror_eof()
                    ? "truncated: the file ends inside its header" : "cannot open as media",
                code: opened)
        }
        var formatContext: UnsafeMutablePointer<AVFormatContext>? = context
        var decoderContext: UnsafeMutablePointer<AVCodecContext>?
        var packet: UnsafeMutablePointer<AVPacket>? = av_packet_alloc()
        var frame: UnsafeMutablePointer<AVFrame>? = av_frame_alloc()
        func cleanUp() {
            avformat_close_input(&formatContext)
            avcodec_free_context(&decoderContext)
            av_packet_free(&packet)
            av_frame_free(&frame)
        }
        do throws(VideoError) {
            let found = avformat_find_stream_info(context, nil)
            guard found >= 0 else {
                throw VideoError(path: path, kind: .notMedia, doing: "cannot read stream information", code: found)
            }
            try Self.refuseStillsAndRawStreams(context, path: path)
            var codec: UnsafePointer<AVCodec>?
            let best = av_find_best_stream(context, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0)
            if best == cffmpeg_averror_stream_not_found() || (best >= 0 && Self.isAttachedPicture(context, best)) {
                throw VideoError(path: path, kind: .noVideoStream, message: "no video stream")
            }
            guard best >= 0, let codec else {
                throw VideoError(path: path, kind: .noDecoder, doing: "no decoder for the video stream", code: best)
            }
            let stream = context.pointee.streams[Int(best)]!
            guard let decoder = avcodec_alloc_context3(codec) else {
                throw VideoError(path: path, kind: .noDecoder, message: "cannot allocate a decoder")
            }
            decoderContext = decoder
            avcodec_parameters_to_context(decoder, stream.pointee.codecpar)
            decoder.pointee.pkt_timebase = stream.pointee.time_base
            decoder.pointee.thread_count = Int32(self.threads)
            decoder.pointee.thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE
            let codecOpened = avcodec_open2(decoder, codec, nil)
            guard codecOpened >= 0 else {
                throw VideoError(
                    path: path, kind: .noDecoder,
                    doing: "cannot open the \(String(cString: codec.pointee.name)) decoder", code: codecOpened)
            }
            guard let packet, let frame else { throw VideoError(path: path, kind: .notMedia, message: "out of memory") }
            var (packets, read, damage) = Self.readPackets(context, stream: best, packet: packet)
            let truncation = Truncation(format: context, stream: stream, framesRead: read, damage: damage)
            // A cut file's last packet is usually cut too, and nothing refers to it: leave it out.
            if truncation != nil && !packets.isEmpty { packets.removeLast() }
            guard !packets.isEmpty else {
                throw VideoError(
                    path: path, kind: .noDecodableFrame,
                    message: truncation.map { $0.describe(framesThere: 0) } ?? "the video stream holds no packets")
            }
            if let shown = Self.firstShownTimestamp(
                context, stream: best, decoder: decoder, packets: packets, packet: packet, frame: frame)
            {
                packets.removeAll { $0.pts! < shown }
            }
            (info, index) = Self.describe(packets, truncation: truncation, stream: stream, codec: codec)
            format = context
            self.decoder = decoder
            self.packet = packet
            self.frame = frame
            streamIndex = best
        } catch {
            cleanUp()
            throw error
        }
        try rewind()
    }

    deinit {
        var context: UnsafeMutablePointer<AVFormatContext>? = format
        avformat_close_input(&context)
        var decoder: UnsafeMutablePointer<AVCodecContext>? = decoder
        avcodec_free_context(&decoder)
        var packet: UnsafeMutablePointer<AVPacket>? = packet
        av_packet_free(&packet)
        var frame: UnsafeMutablePointer<AVFrame>? = frame
        av_frame_free(&frame)
    }

    /// Back to the first frame, with an empty decoder.
    func rewind() throws(VideoError) {
        try seek(to: index.keyframes[0])
    }

    /// Positions the demuxer at the keyframe (or an earlier one) and empties the decoder.
    /// Demuxers seek by presentation time (mov, Matroska) or by decoding time (MPEG-TS and -PS,
    /// which then land some frames after a keyframe whose presentation is later than its
    /// decoding, and the frames before the next keyframe never decode). The stream's first packet
    /// tells where a seek landed; after the keyframe, it is tried again by decoding time, then
    /// by byte position. That packet is kept for decoding.
    func seek(to keyframe: Keyframe) throws(VideoError) {
        if pending { av_packet_unref(packet) }
        pending = false
        avcodec_flush_buffers(decoder)
        position = nil
        skipped = []
        var attempts = [(keyframe.seekTimestamp, AVSEEK_FLAG_BACKWARD)]
        if let dts = keyframe.dts {
            if dts != keyframe.seekTimestamp { attempts.append((dts, AVSEEK_FLAG_BACKWARD)) }
            if keyframe.position >= 0 { attempts.append((keyframe.position, AVSEEK_FLAG_BYTE)) }
        }
        var code: Int32 = 0
        for (target, flags) in attempts {
            code = av_seek_frame(format, streamIndex, target, flags)
            guard code >= 0 else { continue }
            while true {  // the stream's first packet
                code = av_read_frame(format, packet)
                guard code >= 0 else { break }
                if packet.pointee.stream_index == streamIndex { break }
                av_packet_unref(packet)
            }
            guard code >= 0 else { continue }
            let landed = packet.pointee.dts
            if keyframe.dts == nil || landed == cffmpeg_nopts_value() || landed <= keyframe.dts! {
                pending = true
                return
            }
            av_packet_unref(packet)
        }
        let damage = VideoError.Kind.damaged(lastGoodIndex: keyframe.index - 1)
        guard code < 0 else {
            throw VideoError(
                path: path, kind: damage,
                message: "cannot seek to frame \(keyframe.index): every way of seeking lands after it")
        }
        throw VideoError(path: path, kind: damage, doing: "cannot seek to frame \(keyframe.index)", code: code)
    }
}
