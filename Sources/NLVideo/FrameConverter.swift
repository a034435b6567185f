import CFFmpeg
import Foundation

/// swscale from the decoder's pixel format to RGB24 at the target size, then the display
/// rotation, into the caller's buffer. swscale writes into frames FFmpeg allocated itself
/// (av_frame_get_buffer): its SIMD code writes past the end of rows and expects the padding those
/// have. At native size it is one swscale call, as ffmpeg's, so frames equal ffmpeg's. When
/// resizing 8-bit 4:2:0 video (nearly all of Kinetics) it scales in YUV, then converts at the
/// target size, as ffmpeg's "scale,format=yuv420p" chain: a sixth of swscale's instructions against
/// scaling straight to packed RGB, with chroma upsampled as ffmpeg does at native size (repeated,
/// not interpolated). Colours follow the frame's own matrix and range, as ffmpeg's scale filter
/// reads them (see `useColors`).
final class FrameConverter {
    private var direct: OpaquePointer?  // any format to RGB24, scaling
    private var scaler: OpaquePointer?  // yuv420p to yuv420p at the target size
    private var toRGB: OpaquePointer?  // yuv420p to RGB24, same size
    private let rgb = av_frame_alloc()!
    private let yuv = av_frame_alloc()!

    deinit {
        sws_freeContext(direct)
        sws_freeContext(scaler)
        sws_freeContext(toRGB)
        var frames: [UnsafeMutablePointer<AVFrame>?] = [rgb, yuv]
        for i in frames.indices { av_frame_free(&frames[i]) }
    }

    /// Converts `frame` to a width x height RGB picture (as displayed after `rotation` degrees
    /// clockwise) at `destination`, rows packed.
    func convert(
        _ frame: UnsafeMutablePointer<AVFrame>, width: Int, height: Int, rotation: Int, flags: Int32,
        into destination: UnsafeMutablePointer<UInt8>
    ) {
        // Scale to the stored orientation's shape, then turn.
        let (w, h) = rotation % 180 == 0 ? (width, height) : (height, width)
        let f = frame.pointee
        let format = AVPixelFormat(f.format)
        allocate(rgb, w, h, AV_PIX_FMT_RGB24)
        if format == AV_PIX_FMT_YUV420P && (Int(f.width), Int(f.height)) != (w, h) {
            allocate(yuv, w, h, AV_PIX_FMT_YUV420P)
            scaler = sws_getCachedContext(
                scaler, f.width, f.height, format, Int32(w), Int32(h), AV_PIX_FMT_YUV420P, flags, nil, nil, nil)
            toRGB = sws_getCachedContext(
                toRGB, Int32(w), Int32(h), AV_PIX_FMT_YUV420P, Int32(w), Int32(h), AV_PIX_FMT_RGB24, flags, nil, nil,
                nil)
            useColors(f.colorspace, f.color_range, on: scaler)
            useColors(f.colorspace, AVCOL_RANGE_MPEG, on: toRGB)  // the scaler's yuv420p is limited range
            scale(scaler, from: frame, into: yuv)
            scale(toRGB, from: yuv, into: rgb)
        } else {
            direct = sws_getCachedContext(
                direct, f.width, f.height, format, Int32(w), Int32(h), AV_PIX_FMT_RGB24, flags, nil, nil, nil)
            useColors(f.colorspace, f.color_range, on: direct)
            scale(direct, from: frame, into: rgb)
        }
        rotated(
            rgb.pointee.data.0!, stride: Int(rgb.pointee.linesize.0), width: w, height: h, rotation: rotation,
            into: destination)
    }

    /// Tells `context` the source's YCbCr matrix and range. swscale alone takes every video as
    /// BT.601 at the range its pixel format implies; ffmpeg's scale filter (and so PyAV, decord
    /// and torchcodec) uses the frame's own, and most HD video, YouTube's and so Kinetics' among
    /// it, is tagged BT.709: read as BT.601 its colours are off by up to 41 levels of 255. Matrices
    /// swscale has no table for (unspecified, YCgCo, ...) are BT.601, as in ffmpeg (vf_scale's
    /// parse_yuv_type); an unspecified range keeps the pixel format's.
    private func useColors(_ matrix: AVColorSpace, _ range: AVColorRange, on context: OpaquePointer?) {
        var (inverse, table): (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?) = (nil, nil)
        var (sourceFull, targetFull, brightness, contrast, saturation): (Int32, Int32, Int32, Int32, Int32) = (
            0, 0, 0, 0, 0
        )
        guard
            sws_getColorspaceDetails(
                context, &inverse, &sourceFull, &table, &targetFull, &brightness, &contrast, &saturation) >= 0,
            let inverse, let table
        else { return }
        let known = (1...10).contains(matrix.rawValue) && matrix != AVCOL_SPC_YCGCO
        let coefficients = sws_getCoefficients(Int32(bitPattern: (known ? matrix : AVCOL_SPC_BT470BG).rawValue))!
        let full = range == AVCOL_RANGE_UNSPECIFIED ? sourceFull : range == AVCOL_RANGE_JPEG ? 1 : 0
        // Setting them rebuilds swscale's tables: only when they change, not at every frame.
        let same = (0..<4).allSatisfy { inverse[$0] == coefficients[$0] && table[$0] == coefficients[$0] }
        guard !same || full != sourceFull else { return }
        sws_setColorspaceDetails(
            context, coefficients, full, coefficients, targetFull, brightness, contrast, saturation)
    }

    /// Gives `frame` FFmpeg-allocated planes for width x height of `format`, unless it has them.
    private func allocate(_ frame: UnsafeMutablePointer<AVFrame>, _ width: Int, _ height: Int, _ format: AVPixelFormat)
    {
        let f = frame.pointee
        if f.data.0 != nil && Int(f.width) == width && Int(f.height) == height && f.format == format.rawValue { return }
        av_frame_unref(frame)
        frame.pointee.width = Int32(width)
        frame.pointee.height = Int32(height)
        frame.pointee.format = format.rawValue
        guard av_frame_get_buffer(frame, 0) >= 0 else { fatalError("out of memory for a \(width)x\(height) frame") }
    }

    private func scale(
        _ context: OpaquePointer?, from source: UnsafeMutablePointer<AVFrame>,
        into target: UnsafeMutablePointer<AVFrame>
    ) {
        withUnsafePointer(to: &source.pointee.data) { sourceData in
            withUnsafePointer(to: &source.pointee.linesize) { sourceStrides in
                withUnsafePointer(to: &target.pointee.data) { targetData in
                    withUnsafePointer(to: &target.pointee.linesize) { targetStrides in
                        _ = sws_scale(
                            context,
                            UnsafeRawPointer(sourceData).assumingMemoryBound(to: UnsafePointer<UInt8>?.self),
                            UnsafeRawPointer(sourceStrides).assumingMemoryBound(to: Int32.self), 0,
                            source.pointee.height,
                            UnsafeRawPointer(targetData).assumingMemoryBound(to: UnsafeMutablePointer<UInt8>?.self),
                            UnsafeRawPointer(targetStrides).assumingMemoryBound(to: Int32.self))
                    }
                }
            }
        }
    }

    /// Copies a picture turned `rotation` degrees clockwise, as ffmpeg's transpose=clock (90),
    /// hflip+vflip (180) and transpose=cclock (270).
    private func rotated(
        _ source: UnsafeMutablePointer<UInt8>, stride: Int, width: Int, height: Int, rotation: Int,
        into destination: UnsafeMutablePointer<UInt8>
    ) {
        switch rotation {
        case 90:  // output (r, c) = input (height - 1 - c, r); output is height wide
            for r in 0..<width {
                for c in 0..<height {
                    copyPixel(source + (height - 1 - c) * stride + r * 3, destination + (r * height + c) * 3)
                }
            }
        case 180:
            for r in 0..<height {
                for c in 0..<width {
                    copyPixel(
                        source + (height - 1 - r) * stride + (width - 1 - c) * 3, destination + (r * width + c) * 3)
                }
            }
        case 270:  // output (r, c) = input (c, width - 1 - r)
            for r in 0..<width {
                for c in 0..<height {
                    copyPixel(source + c * stride + (width - 1 - r) * 3, destination + (r * height + c) * 3)
                }
            }
        default:
            for r in 0..<height { (destination + r * width * 3).update(from: source + r * stride, count: width * 3) }
        }
    }

    @inline(__always)
    private func copyPixel(_ from: UnsafeMutablePointer<UInt8>, _ to: UnsafeMutablePointer<UInt8>) {
        to[0] = from[0]
        to[1] = from[1]
        to[2] = from[2]
    }
}
