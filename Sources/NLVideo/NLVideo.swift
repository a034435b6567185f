import CFFmpeg

/// The FFmpeg version this module was built against, as "libavcodec X.Y.Z".
public var ffmpegVersion: String {
    let v = avcodec_version()
    return "libavcodec \(v >> 16).\((v >> 8) & 0xff).\(v & 0xff)"
}
