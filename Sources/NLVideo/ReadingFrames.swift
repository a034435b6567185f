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
