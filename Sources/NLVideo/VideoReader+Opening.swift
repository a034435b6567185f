import CFFmpeg
import Foundation

/// What opening a file finds out, once: whether it is a video at all, its packets, the frame index
/// and the metadata.
extension VideoReader {
    /// Cover art in an audio file is a "video" stream of one attached picture, not a video.
    static func isAttachedPicture(_ context: UnsafeMutablePointer<AVFormatContext>, _ stream: Int32) -> Bool {
        context.pointee.streams[Int(stream)]!.pointee.disposition & AV_DISPOSITION_ATTACHED_PIC != 0
    }

    /// Image files (JPEG, PNG: FFmpeg's image2 and *_pipe demuxers) are one still picture, and
    /// raw elementary streams (.h264, .hevc) carry no timestamps and no index to find a frame by:
    /// neither is a video the loader can sample.
    static func refuseStillsAndRawStreams(
        _ context: UnsafeMutablePointer<AVFormatContext>, path: String
    ) throws(VideoError) {
        let demuxer = context.pointee.iformat.pointee
        let name = String(cString: demuxer.name), longName = demuxer.long_name.map { String(cString: $0) } ?? name
        let codec =
            context.pointee.nb_streams > 0
            ? String(cString: avcodec_get_name(context.pointee.streams[0]!.pointee.codecpar.pointee.codec_id))
            : "unknown"
        if name == "image2" || name.hasSuffix("_pipe") {
            throw VideoError(path: path, kind: .notVideo, message: "a still image (\(codec)), not a video")
        }
        if longName.hasPrefix("raw ") {  // FFmpeg's raw demuxers: "raw H.264 video", "raw HEVC video", ...
            throw VideoError(
                path: path, kind: .notVideo,
                message: "a raw \(codec) stream (\(longName)) without a container: it has no timestamps and no index, "
                    + "so its frames cannot be found by seeking; put it in a container first (ffmpeg -i FILE -c copy FILE.mp4)"
            )
        }
    }

    /// Where the frames begin that a decoder shows, when the stream does not start on a keyframe
    /// (a file cut without re-encoding, a broadcast recording): the frames before its first
    /// keyframe refer to pictures that are not in the file, and decoders drop them, as the ffmpeg
    /// CLI and PyAV do. Decodes from the start to the first frame shown (one GOP at most)
    /// and returns its presentation timestamp; nil when the stream starts on a keyframe, has no
    /// keyframe or no timestamps, or nothing decodes.
    static func firstShownTimestamp(
        _ context: UnsafeMutablePointer<AVFormatContext>, stream: Int32,
        decoder: UnsafeMutablePointer<AVCodecContext>, packets: [PacketTiming],
        packet: UnsafeMutablePointer<AVPacket>, frame: UnsafeMutablePointer<AVFrame>
    ) -> Int64? {
        guard let first = packets.first, !first.isKey, packets.contains(where: \.isKey),
            packets.allSatisfy({ $0.pts != nil })
        else { return nil }
        defer {
            avcodec_flush_buffers(decoder)
            _ = FFmpegLog.takeLastError()  // the frames it could not decode are no error of a later call
        }
        guard av_seek_frame(context, stream, first.dts ?? first.pts!, AVSEEK_FLAG_BACKWARD) >= 0 else { return nil }
        var sent = 0, ended = false
        while sent < packets.count + 64 && !ended {
            if av_read_frame(context, packet) >= 0 {
                defer { av_packet_unref(packet) }
                guard packet.pointee.stream_index == stream else { continue }
                sent += 1
                avcodec_send_packet(decoder, packet)
            } else {
                avcodec_send_packet(decoder, nil)
                ended = true
            }
            if avcodec_receive_frame(decoder, frame) >= 0 {
                defer { av_frame_unref(frame) }
                let pts =
                    frame.pointee.pts != cffmpeg_nopts_value() ? frame.pointee.pts : frame.pointee.best_effort_timestamp
                return pts == cffmpeg_nopts_value() ? nil : pts
            }
        }
        return nil
    }

    /// A video packet's timing, as read by the index pass.
    struct PacketTiming {
        let pts: Int64?
        let dts: Int64?
        let duration: Int64
        let isKey: Bool
        let position: Int64
    }

    /// Demuxes the whole file once (no decoding), keeping the video packets' timing. Stops at the
    /// end or at the first read error: packets past damage are not in the index. Also returns
    /// how many packets of the stream were read (those to discard too) and FFmpeg's words when
    /// the reading went wrong: a read error, or an error the demuxer logged ("partial file",
    /// "File ended prematurely").
    static func readPackets(
        _ context: UnsafeMutablePointer<AVFormatContext>, stream: Int32,
        packet: UnsafeMutablePointer<AVPacket>
    ) -> ([PacketTiming], read: Int, damage: String?) {
        var packets: [PacketTiming] = []
        let none = cffmpeg_nopts_value()
        _ = FFmpegLog.takeLastError()
        var status: Int32 = 0, read = 0
        while true {
            status = av_read_frame(context, packet)
            guard status >= 0 else { break }
            defer { av_packet_unref(packet) }
            let p = packet.pointee
            guard p.stream_index == stream else { continue }
            read += 1
            guard p.flags & AV_PKT_FLAG_DISCARD == 0 else { continue }
            packets.append(
                PacketTiming(
                    pts: p.pts == none ? nil : p.pts, dts: p.dts == none ? nil : p.dts,
                    duration: p.duration, isKey: p.flags & AV_PKT_FLAG_KEY != 0, position: p.pos))
        }
        if let logged = FFmpegLog.takeLastError() { return (packets, read, logged) }
        guard status != cffmpeg_averror_eof() else { return (packets, read, nil) }
        return (packets, read, VideoError(path: "", kind: .notMedia, doing: "read error", code: status).message)
    }

    /// Metadata and the frame index from the packets.
    static func describe(
        _ packets: [PacketTiming], truncation: Truncation?,
        stream: UnsafeMutablePointer<AVStream>, codec: UnsafePointer<AVCodec>
    ) -> (VideoInfo, Index) {
        let timeBase = av_q2d(stream.pointee.time_base)
        var index = Index()
        for (position, p) in packets.enumerated() {  // the first packet of a repeated time: where a read from it starts
            if let dts = p.dts, index.byDecodingTimestamp[dts] == nil { index.byDecodingTimestamp[dts] = position }
        }
        let ticks: [Int64]  // presentation times in stream ticks, in presentation order
        // Timestamps that repeat (Matroska files whose frames share times) index no frame: such a
        // stream is counted in decoding order, as the ffmpeg CLI shows it (50 frames, not 10).
        if packets.allSatisfy({ $0.pts != nil }) && Set(packets.map { $0.pts! }).count == packets.count {
            ticks = Array(Set(packets.map { $0.pts! })).sorted()
            var byTimestamp: [Int64: Int] = [:]
            for (i, t) in ticks.enumerated() { byTimestamp[t] = i }
            index.byTimestamp = byTimestamp
            // Seek by presentation time: demuxers search their index by it (mov shifts it onto its
            // decoding timeline itself), and a decoding time, earlier by the reordering delay, lands
            // on the keyframe before, doubling the work.
            index.keyframes = packets.filter(\.isKey).map {
                Keyframe(index: byTimestamp[$0.pts!]!, seekTimestamp: $0.pts!, packet: $0)
            }
        } else {
            ticks = packets.enumerated().map { $0.element.dts ?? Int64($0.offset) }
            // Without reordering a keyframe's decode position is its presentation index. With it
            // (B-frames in AVI), an anchor frame is shown some slots after it is stored, and
            // nothing in the packets says how many: such files are decoded from the start.
            if stream.pointee.codecpar.pointee.video_delay == 0 && Set(packets.compactMap(\.dts)).count == packets.count
            {
                index.keyframes = packets.enumerated().filter { $0.element.isKey }.map {
                    Keyframe(index: $0.offset, seekTimestamp: $0.element.dts ?? Int64($0.offset), packet: $0.element)
                }
            }
        }
        index.keyframes.sort { $0.index < $1.index }
        // a stream that does not start on a keyframe is still decoded from its start
        if index.keyframes.first?.index != 0 {
            index.keyframes.insert(
                Keyframe(index: 0, seekTimestamp: packets[0].dts ?? ticks[0], packet: packets[0]), at: 0)
        }
        let timestamps = ticks.map { Double($0 - ticks[0]) * timeBase }
        // The average over the index, which is right for variable frame rates; the container's
        // figure only for a single frame.
        let rate = stream.pointee.avg_frame_rate
        // In whole ticks, one rounding: 10 fps in a 1/90000 time base is 10, not 9.999999999999998.
        let base = stream.pointee.time_base
        let measured =
            ticks.count > 1
            ? Double(ticks.count - 1) * Double(base.den) / (Double(ticks.last! - ticks[0]) * Double(base.num)) : 0
        let fps = measured.isFinite && measured > 0 ? measured : (rate.num > 0 && rate.den > 0 ? av_q2d(rate) : 0)
        let lastDuration =
            packets.last!.duration > 0 ? Double(packets.last!.duration) * timeBase : (fps > 0 ? 1 / fps : 0)
        let parameters = stream.pointee.codecpar.pointee
        let info = VideoInfo(
            frames: ticks.count, fps: fps, duration: (timestamps.last ?? 0) + lastDuration,
            width: Int(parameters.width), height: Int(parameters.height),
            rotation: displayRotation(stream), codec: String(cString: avcodec_get_name(parameters.codec_id)),
            pixelFormat: av_get_pix_fmt_name(AVPixelFormat(parameters.format)).map { String(cString: $0) } ?? "unknown",
            timestamps: timestamps, truncation: truncation?.describe(framesThere: ticks.count))
        return (info, index)
    }
}

/// Degrees clockwise that turn the stored picture upright: the display matrix's rotation is
/// counterclockwise, as ffmpeg's autorotate reads it. As the ffmpeg CLI, a quarter turn is
/// applied within 1 degree of it; another angle (45: "Odd rotation angle", ffmpeg says) is not
/// turned by quarters (it read as 270). ffmpeg 5.1 then turns the picture within its own frame,
/// black in the corners, which no training pipeline wants: such a video is read as stored.
func displayRotation(_ stream: UnsafeMutablePointer<AVStream>) -> Int {
    var size: Int = 0
    guard let data = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, &size), size >= 9 * 4 else { return 0 }
    let angle = -av_display_rotation_get(UnsafeRawPointer(data).assumingMemoryBound(to: Int32.self))
    return quarterTurn(of: angle)
}

/// 0, 90, 180 or 270 for an angle within 1 degree of it (any number of turns away), else 0.
func quarterTurn(of angle: Double) -> Int {
    guard angle.isFinite else { return 0 }
    let quarters = (angle / 90).rounded()
    guard abs(angle - quarters * 90) < 1 else { return 0 }
    return ((Int(quarters) % 4) + 4) % 4 * 90
}
