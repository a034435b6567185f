import CFFmpeg
import Foundation

/// RGB frames (count, height, width, 3), row-major, 8 bits a channel.
public struct VideoFrames: Sendable {
    public let count: Int
    public let height: Int
    public let width: Int
    public var pixels: [UInt8]

    public init(count: Int, height: Int, width: Int, pixels: [UInt8]) {
        precondition(
            pixels.count == count * height * width * 3,
            "\(pixels.count) bytes for \(count) frames of \(width)x\(height)")
        (self.count, self.height, self.width, self.pixels) = (count, height, width, pixels)
    }

    /// The bytes of frame `i`.
    public func frame(_ i: Int) -> ArraySlice<UInt8> {
        let size = height * width * 3
        return pixels[(i * size)..<((i + 1) * size)]
    }
}

/// The size frames are returned at.
public enum FrameSize: Sendable, Equatable {
    /// As stored (after rotation, if applied).
    case native
    /// Scaled so the shorter side is this long, keeping the aspect ratio (mmaction2's
    /// Resize(scale=(-1, S)): sides rounded half up).
    case shortSide(Int)
    case exactly(width: Int, height: Int)
}

/// swscale's interpolation for resizing.
public enum Interpolation: String, Sendable, CaseIterable {
    case bilinear, bicubic, area

    var flags: Int32 {
        switch self {
        case .bilinear: SWS_BILINEAR
        case .bicubic: SWS_BICUBIC
        case .area: SWS_AREA
        }
    }
}

extension VideoReader {
    /// The frames at `indices` (presentation order; any order, repeats allowed), as RGB at `size`,
    /// turned upright unless `rotate` is false. Decodes forward from the keyframe at or before the
    /// first frame wanted, seeking only when that skips work, and converts each wanted frame
    /// once, straight to the target size.
    public func frames(
        at indices: [Int], size: FrameSize = .native, interpolation: Interpolation = .bilinear,
        rotate: Bool = true
    ) throws(VideoError) -> VideoFrames {
        guard !indices.isEmpty else { return VideoFrames(count: 0, height: 0, width: 0, pixels: []) }
        if let bad = indices.first(where: { $0 < 0 || $0 >= info.frames }) {
            throw VideoError(
                path: path, kind: .invalidRequest, message: "frame \(bad) is outside the video's \(info.frames) frames")
        }
        let rotation = rotate ? info.rotation : 0
        let shown =
            rotation % 180 == 0 ? (width: info.width, height: info.height) : (width: info.height, height: info.width)
        let (width, height) = try outputSize(size, shown: shown)
        let frameBytes = width * height * 3
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        guard Double(frameBytes) * Double(indices.count) < memory / 2 else {
            throw VideoError(
                path: path, kind: .invalidRequest,
                message: "\(indices.count) frames of \(width)x\(height) would take "
                    + String(
                        format: "%.1f GB, more than half of this machine's %.1f GB",
                        Double(frameBytes * indices.count) / 1e9, memory / 1e9))
        }
        var output = VideoFrames(
            count: indices.count, height: height, width: width,
            pixels: [UInt8](repeating: 0, count: indices.count * frameBytes))
        var slots: [Int: [Int]] = [:]
        for (slot, i) in indices.enumerated() { slots[i, default: []].append(slot) }
        let wanted = slots.keys.sorted()
        // Native size converts with ffmpeg's own default (bicubic), so frames match its output.
        let flags = size == .native ? SWS_BICUBIC : interpolation.flags
        var remaining = wanted.count
        try output.pixels.withUnsafeMutableBufferPointer {
            (pixels: inout UnsafeMutableBufferPointer<UInt8>) throws(VideoError) in
            let base = pixels.baseAddress!
            func read(before keyframeLimit: Int?) throws(VideoError) -> Int? {
                let pending = slots.keys.sorted()
                return try decode(
                    wanted: Set(pending), from: pending.first!, through: pending.last!, keyframeBefore: keyframeLimit
                ) { i, frame in
                    guard let targets = slots[i] else { return false }
                    let first = base + targets[0] * frameBytes
                    converter.convert(
                        frame, width: width, height: height, rotation: rotation, flags: flags, into: first)
                    for slot in targets.dropFirst() {
                        (base + slot * frameBytes).update(from: first, count: frameBytes)
                    }
                    slots[i] = nil
                    remaining -= 1
                    return remaining == 0
                }
            }
            // An open GOP's keyframe is no clean entry point: frames after it may still refer to
            // the GOP before, and the decoder drops them. Once, go back one keyframe and read
            // what is missing from there.
            if let keyframe = try read(before: nil), remaining > 0, keyframe > 0 {
                position = nil
                _ = try read(before: keyframe)
            }
        }
        if remaining > 0 {
            let missing = slots.keys.min()!
            throw VideoError(
                path: path, kind: .damaged(lastGoodIndex: missing - 1),
                message: "frame \(missing) could not be decoded (the stream is damaged there)"
                    + (missing > 0 ? "; frames up to \(missing - 1) decode" : ""))
        }
        return output
    }

    private func outputSize(_ size: FrameSize, shown: (width: Int, height: Int)) throws(VideoError) -> (Int, Int) {
        let (width, height) = try unchecked(size, shown: shown)
        // swscale's own limit, and far past any video's.
        guard width <= Self.maximumSide && height <= Self.maximumSide else {
            throw VideoError(
                path: path, kind: .invalidRequest,
                message: "\(width)x\(height) frames are larger than \(Self.maximumSide) pixels a side")
        }
        return (width, height)
    }

    /// The largest width or height frames are scaled to.
    public static let maximumSide = 16384

    private func unchecked(_ size: FrameSize, shown: (width: Int, height: Int)) throws(VideoError) -> (Int, Int) {
        switch size {
        case .native:
            return (shown.width, shown.height)
        case .shortSide(let s):
            guard s > 0 else {
                throw VideoError(path: path, kind: .invalidRequest, message: "short side \(s) is not positive")
            }
            let scale = Double(s) / Double(min(shown.width, shown.height))
            return (max(1, Int(Double(shown.width) * scale + 0.5)), max(1, Int(Double(shown.height) * scale + 0.5)))
        case .exactly(let w, let h):
            guard w > 0, h > 0 else {
                throw VideoError(path: path, kind: .invalidRequest, message: "size \(w)x\(h) is not positive")
            }
            return (w, h)
        }
    }

    /// Decodes frames `first...last`, handing each decoded frame with its presentation index to
    /// `deliver` until it returns true or the range is passed. Frames that are neither `wanted`
    /// nor referenced by other frames are not decoded at all. Every loop is bounded: at most as
    /// many packets as the index holds, plus a margin, are read.
    /// Returns the index of the keyframe it sought to, or nil when it went on from where the last
    /// read stopped; `keyframeBefore` makes it seek to a keyframe before that index.
    @discardableResult
    func decode(
        wanted: Set<Int>, from first: Int, through last: Int, keyframeBefore limit: Int? = nil,
        _ deliver: (Int, UnsafeMutablePointer<AVFrame>) -> Bool
    ) throws(VideoError) -> Int? {
        let keyframe = index.keyframes.last { $0.index <= first && $0.index < (limit ?? Int.max) } ?? index.keyframes[0]
        // Go on decoding forward only when no keyframe lies between here and the target, and no
        // frame wanted was skipped on the way here.
        var sought: Int?
        if position == nil || position! >= first || keyframe.index > position! || !skipped.isDisjoint(with: wanted) {
            try seek(to: keyframe)
            sought = keyframe.index
        }
        // The next frame's index, when counting in output order: known when going on from here,
        // else from the first packet after the seek.
        var counted = index.byTimestamp == nil ? position.map { $0 + 1 } : nil
        var packetsLeft = info.frames + 64
        var decodeErrors = 0
        func drain() -> Bool {
            while avcodec_receive_frame(decoder, frame) >= 0 {
                defer { av_frame_unref(frame) }
                let i: Int
                if let byTimestamp = index.byTimestamp {
                    let pts =
                        frame.pointee.pts != cffmpeg_nopts_value()
                        ? frame.pointee.pts : frame.pointee.best_effort_timestamp
                    guard let found = byTimestamp[pts] else { continue }
                    i = found
                } else {
                    guard let next = counted else { continue }
                    i = next
                    counted = next + 1
                }
                position = i
                if i >= first && i <= last && deliver(i, frame) { return true }
                if i >= last { return true }  // past the range: what is missing is not coming
            }
            return false
        }
        while packetsLeft > 0 {
            let read = pending ? 0 : av_read_frame(format, packet)
            pending = false
            if read < 0 {  // the end, or damage: drain the decoder, and the next read seeks
                avcodec_send_packet(decoder, nil)
                _ = drain()
                position = nil
                return sought
            }
            defer { av_packet_unref(packet) }
            guard packet.pointee.stream_index == streamIndex else { continue }
            packetsLeft -= 1
            if index.byTimestamp == nil && counted == nil, let position = index.byDecodingTimestamp[packet.pointee.dts]
            {
                counted = position  // the keyframe the seek landed on
            }
            decoder.pointee.skip_frame = skipping(packet.pointee, wanted: wanted)
            if avcodec_send_packet(decoder, packet) < 0 {
                decodeErrors += 1
                if decodeErrors > 32 { break }
                continue
            }
            if drain() { return sought }
        }
        position = nil
        return sought
    }

    /// What the decoder may skip of this packet's frame: if the frame is not wanted, all of it
    /// when nothing references it (a non-reference B-frame: skipping it changes no other frame).
    /// Only with one decoder thread, where the setting applies to exactly this packet, and only
    /// when frames are known by timestamp (counting output frames needs every frame output).
    private func skipping(_ packet: AVPacket, wanted: Set<Int>) -> AVDiscard {
        guard threads == 1, let byTimestamp = index.byTimestamp, let i = byTimestamp[packet.pts], !wanted.contains(i)
        else {
            return AVDISCARD_DEFAULT
        }
        skipped.insert(i)  // if it is a reference frame, the decoder decodes it anyway; no matter
        return AVDISCARD_NONREF
    }
}

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
