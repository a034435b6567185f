import CFFmpeg
import Foundation

/// PNG files of RGB frames, encoded by FFmpeg's PNG encoder.
public enum PNG {
    /// The PNG encoding of a width x height RGB24 picture.
    public static func encode(rgb pixels: ArraySlice<UInt8>, width: Int, height: Int) throws(VideoError) -> Data {
        FFmpegLog.installed
        guard let codec = avcodec_find_encoder(AV_CODEC_ID_PNG) else {
            throw VideoError(path: "png", kind: .noDecoder, message: "FFmpeg has no PNG encoder")
        }
        var context = avcodec_alloc_context3(codec)
        var frame = av_frame_alloc()
        var packet = av_packet_alloc()
        defer {
            avcodec_free_context(&context)
            av_frame_free(&frame)
            av_packet_free(&packet)
        }
        guard let context, let frame, let packet else {
            throw VideoError(path: "png", kind: .notMedia, message: "out of memory")
        }
        context.pointee.width = Int32(width)
        context.pointee.height = Int32(height)
        context.pointee.pix_fmt = AV_PIX_FMT_RGB24
        context.pointee.time_base = AVRational(num: 1, den: 1)
        let opened = avcodec_open2(context, codec, nil)
        guard opened >= 0 else {
            throw VideoError(path: "png", kind: .noDecoder, doing: "cannot open the PNG encoder", code: opened)
        }
        frame.pointee.width = Int32(width)
        frame.pointee.height = Int32(height)
        frame.pointee.format = AV_PIX_FMT_RGB24.rawValue
        av_frame_get_buffer(frame, 0)
        let stride = Int(frame.pointee.linesize.0)
        pixels.withUnsafeBufferPointer { source in
            for r in 0..<height {
                (frame.pointee.data.0! + r * stride).update(from: source.baseAddress! + r * width * 3, count: width * 3)
            }
        }
        var result = avcodec_send_frame(context, frame)
        if result >= 0 { result = avcodec_receive_packet(context, packet) }
        guard result >= 0 else {
            throw VideoError(path: "png", kind: .notMedia, doing: "cannot encode PNG", code: result)
        }
        defer { av_packet_unref(packet) }
        return Data(bytes: packet.pointee.data, count: Int(packet.pointee.size))
    }
}
