import ArgumentParser
import Foundation
import NLData

@main
struct NLVideoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nlvideo",
        abstract: "Probe and decode videos with FFmpeg, as the training pipeline reads them.",
        subcommands: [Probe.self, Frames.self])
}

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print each video's metadata as a JSON line.",
        discussion: """
            Keys: path, frames (counted from the packet index, not the container's estimate), fps, duration \
            (seconds), width and height (as stored), rotation (degrees clockwise to show it upright), codec; or \
            path and error for a file that cannot be read. Exits 65 when some file cannot be read.
            """)

    @Argument(help: "Video files.")
    var files: [String]

    func run() throws {
        var failed = false
        for file in files {
            let line = ProbeLine(path: file)
            failed = failed || line.error != nil
            print(line.json)
        }
        if failed { throw ExitCode(65) }
    }
}

struct Frames: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode frames at given indices to a safetensors file or PNG files.",
        discussion: """
            Frame i is the i-th frame in presentation order. The output holds a uint8 tensor 'frames' \
            [T, H, W, 3] (RGB) in the order asked, repeats included. Display rotation is applied unless --no-rotate. \
            Exit codes: 0 done, 64 usage, 65 the video cannot be decoded, 74 cannot write the output.
            """)

    @Argument(help: "Video file.")
    var file: String

    @Option(help: ArgumentHelp("Frame indices, comma-separated.", valueName: "i,j,..."))
    var indices: String

    @Option(help: "Scale so the shorter side has this many pixels.")
    var shortSide: Int?

    @Option(help: ArgumentHelp("Scale to exactly this size.", valueName: "WxH"))
    var size: String?

    @Option(help: "Interpolation when scaling: bilinear, bicubic or area.")
    var interpolation: String = "bilinear"

    @Flag(help: "Keep the stored orientation instead of applying the display rotation.")
    var noRotate = false

    @Option(help: "Safetensors file to write.")
    var output: String?

    @Option(help: "Folder to write frame_<k>_<index>.png files into instead.")
    var png: String?

    func validate() throws {
        if shortSide != nil && size != nil { throw ValidationError("give --short-side or --size, not both") }
        if (output == nil) == (png == nil) { throw ValidationError("give --output FILE or --png DIR") }
        if Interpolation(rawValue: interpolation) == nil { throw ValidationError("--interpolation is bilinear, bicubic or area") }
        if frameIndices == nil { throw ValidationError("--indices takes comma-separated frame numbers, such as 0,5,9") }
        if size != nil && targetSize == nil { throw ValidationError("--size takes WxH, such as 320x240") }
    }

    var frameIndices: [Int]? {
        let parts = indices.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        return parts.isEmpty || parts.contains(nil) ? nil : parts.map { $0! }
    }

    var targetSize: FrameSize? {
        if let shortSide { return .shortSide(shortSide) }
        guard let size else { return .native }
        let parts = size.lowercased().split(separator: "x").compactMap { Int($0) }
        return parts.count == 2 ? .exactly(width: parts[0], height: parts[1]) : nil
    }

    func run() throws {
        do {
            let reader = try VideoReader(path: file)
            let frames = try reader.frames(at: frameIndices!, size: targetSize!, interpolation: Interpolation(rawValue: interpolation)!,
                                           rotate: !noRotate)
            if let output {
                var tensors = SafeTensors()
                tensors.set("frames", uint8s: Data(frames.pixels), shape: [frames.count, frames.height, frames.width, 3])
                try tensors.write(to: output)
                print("wrote \(output): frames [\(frames.count), \(frames.height), \(frames.width), 3]")
            } else if let png {
                try FileManager.default.createDirectory(atPath: png, withIntermediateDirectories: true)
                for (k, i) in frameIndices!.enumerated() {
                    let path = "\(png)/frame_\(k)_\(i).png"
                    try PNG.encode(rgb: frames.frame(k), width: frames.width, height: frames.height).write(to: URL(fileURLWithPath: path))
                }
                print("wrote \(frames.count) PNG files to \(png)")
            }
        } catch let error as VideoError {
            FileHandle.standardError.write(Data("nlvideo: \(error)\n".utf8))
            throw ExitCode(error.kind == .invalidRequest ? 64 : 65)
        } catch {
            FileHandle.standardError.write(Data("nlvideo: \(error)\n".utf8))
            throw ExitCode(74)
        }
    }
}
