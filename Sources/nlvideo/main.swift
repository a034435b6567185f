import ArgumentParser
import Foundation
import NLCommands
import NLData
import NLDistributed
import NLLayers
import NLModels
import NLTensor
import NLTrain
import NLVideo

@main
struct NLVideoCommand: Command {
    static let configuration = CommandConfiguration(
        commandName: "nlvideo",
        abstract: "Probe and decode videos with FFmpeg, as the training pipeline reads them.",
        subcommands: [Probe.self, Frames.self, Check.self])
}

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print each video's metadata as a JSON line.",
        discussion: """
            Keys: path, frames (counted from the packet index, not the container's estimate), fps, duration \
            (seconds), width and height (as stored), rotation (degrees clockwise to show it upright), codec; or \
            path and error for a file that cannot be read. Exits 65 when some file cannot be read.
            """)

    @Argument(parsing: .allUnrecognized, help: "Video files.")  // -dash.mp4 is a file, not -d -a -s -h
    var files: [String]

    func run() throws {
        try runCommand("nlvideo") {
            var failed = false
            for file in files {
                let line = ProbeLine(path: file)
                failed = failed || line.error != nil
                print(line.json)
            }
            return failed ? .data : .done
        }
    }
}

struct Frames: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode frames at given indices to a safetensors file or PNG files.",
        discussion: """
            Frame i is the i-th frame in presentation order. The output holds a uint8 tensor 'frames' \
            [T, H, W, 3] (RGB) in the order asked, repeats included. Display rotation is applied unless --no-rotate. \
            \(ExitStatus.legend(.done, .usage, .data, .io, saying: [.data: "the video cannot be decoded", .io: "cannot write the output"]))
            """)

    // A list, to take a name that starts with '-' as a file (swift-argument-parser would read
    // -dash.mp4 as -d -a -s -h and print the help); one is required.
    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Video file.", valueName: "file"))
    var files: [String] = []
    var file: String { files[0] }

    // "-1" is a value, refused by its range, not an option
    @Option(parsing: .unconditional, help: ArgumentHelp("Frame indices, comma-separated.", valueName: "i,j,..."))
    var indices: String

    @Option(help: "Scale so the shorter side has this many pixels.")
    var shortSide: Int?

    @Option(help: ArgumentHelp("Scale to exactly this size.", valueName: "WxH"))
    var size: String?

    @Option(help: "Interpolation when scaling: bilinear, bicubic or area.")
    var interpolation: Interpolation = .bilinear

    @Flag(help: "Keep the stored orientation instead of applying the display rotation.")
    var noRotate = false

    @Option(help: "Safetensors file to write.")
    var output: String?

    @Option(help: "Folder to write frame_<k>_<index>.png files into instead.")
    var png: String?

    func validate() throws {
        if files.count != 1 { throw ValidationError("give one video file") }
        if shortSide != nil && size != nil { throw ValidationError("give --short-side or --size, not both") }
        if (output == nil) == (png == nil) { throw ValidationError("give --output FILE or --png DIR") }
        if frameIndices == nil { throw ValidationError("--indices takes comma-separated frame numbers, such as 0,5,9") }
        if size != nil && targetSize == nil { throw ValidationError("--size takes WxH, such as 320x240") }
    }

    var frameIndices: [Int]? {
        let parts = indices.split(separator: ",", omittingEmptySubsequences: false).map {
            Int($0.trimmingCharacters(in: .whitespaces))
        }  // "1,,2" is a mistake
        return parts.isEmpty || parts.contains(nil) ? nil : parts.map { $0! }
    }

    var targetSize: FrameSize? {
        if let shortSide { return .shortSide(shortSide) }
        guard let size else { return .native }
        let parts = size.lowercased().split(separator: "x").compactMap { Int($0) }
        return parts.count == 2 ? .exactly(width: parts[0], height: parts[1]) : nil
    }

    func run() throws {
        try runCommand("nlvideo") {
            try refuseClashes(outputs: [("--output", output)], inputs: [("the video", file)])
            if let output { try Files.checkWritable(output, what: "frames file") }
            if let png { try Files.makeDirectory(png, what: "folder for the PNG files") }
            let reader = try VideoReader(path: file)
            let frames = try reader.frames(
                at: frameIndices!, size: targetSize!, interpolation: interpolation, rotate: !noRotate)
            if let output {
                var tensors = SafeTensors()
                tensors.set(
                    "frames", uint8s: Data(frames.pixels), shape: [frames.count, frames.height, frames.width, 3])
                try tensors.write(to: output, what: "frames file")
                print("wrote \(output): frames [\(frames.count), \(frames.height), \(frames.width), 3]")
            } else if let png {
                for (k, i) in frameIndices!.enumerated() {
                    try Files.write(
                        PNG.encode(rgb: frames.frame(k), width: frames.width, height: frames.height),
                        to: "\(png)/frame_\(k)_\(i).png", what: "PNG file")
                }
                print("wrote \(frames.count) PNG files to \(png)")
            }
            return .done
        }
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read every video of a dataset and report the missing and undecodable ones.",
        discussion: """
            The dataset comes from --config (its [data] section; --split train, val or both) or from an annotation \
            file with --format and --root. Videos are read several at once with a progress bar (plain lines when not \
            on a terminal). By default the first, middle and last frames of each video are decoded, which finds \
            truncated and damaged files; --every-frame decodes all of them. Each problem is printed with its \
            annotation line; --bad-list writes the paths of the bad videos, one a line. \
            \(ExitStatus.legend(.done, .usage, .data, saying: [.done: "all readable", .data: "some video missing or undecodable (or a bad annotation file)"]))
            """)

    // A list, to take a name that starts with '-' as a file; at most one.
    @Argument(
        parsing: .allUnrecognized,
        help: ArgumentHelp("An annotation file (instead of --config).", valueName: "annotations"))
    var files: [String] = []
    var annotations: String? { files.first }

    @OptionGroup var options: ConfigOptions

    /// The splits to read, with --config.
    enum Splits: String, CaseIterable, ExpressibleByArgument { case train, val, both }

    @Option(help: "With --config: train, val or both.")
    var split: Splits = .both

    @Option(help: "Annotation format without --config: kinetics_csv, list or folders.")
    var format: AnnotationFormat = .kineticsCSV

    @Option(help: "Folder the videos are under, without --config.")
    var root = ""

    @Option(help: "Videos read at once (default: every core this process may use).")
    var workers = Parallel.usableCores

    @Flag(help: "Decode every frame instead of the first, middle and last.")
    var everyFrame = false

    @Option(help: "Write the paths of missing and undecodable videos to this file.")
    var badList: String?

    func validate() throws {
        if files.count > 1 { throw ValidationError("give one annotation file") }
        if (options.config == nil) == (annotations == nil) {
            throw ValidationError("give --config FILE or an annotation file")
        }
    }

    func run() throws {
        try runCommand("nlvideo") {
            try refuseClashes(
                outputs: [("--bad-list", badList)],
                inputs: [("the annotation file", annotations), ("--config", options.config)])
            if let badList { try Files.checkWritable(badList, what: "list of bad videos") }
            var datasets: [Dataset] = []
            if options.config != nil {
                let resolved = try options.resolve()
                let splits: [DataSetup.Split] =
                    switch split {
                    case .both: resolved.data.valAnnotations.isEmpty ? [.train] : [.train, .val]
                    case .train: [.train]
                    case .val: [.val]
                    }
                datasets = try splits.map { try DataSetup.dataset(resolved, split: $0) }
            } else {
                datasets = [try Annotations.load(format: format, annotations: annotations!, root: root)]
            }
            var problems: [DatasetCheck.Problem] = []
            var videos = 0, malformed = 0
            for dataset in datasets {
                for line in dataset.malformed { print("\(line.source): malformed: \(line.reason)") }
                for line in dataset.warnings { print("\(line.source): warning: \(line.message)") }
                malformed += dataset.malformed.count
                let progress = ProgressDisplay(total: dataset.entries.count, label: "checked")
                problems += DatasetCheck.run(dataset, workers: workers, everyFrame: everyFrame) { progress.advance() }
                progress.finish()
                videos += dataset.entries.count + dataset.missing.count
            }
            for p in problems { print("\(p.source): \(p.message)") }
            let counts = DatasetCheck.Problem.Kind.allCases.map { kind in
                "\(problems.filter { $0.kind == kind }.count) \(kind.rawValue)"
            }
            print(
                "checked \(videos) videos: \(videos - problems.count) readable, \(counts.joined(separator: ", "))"
                    + (malformed > 0 ? "; \(malformed) malformed line\(malformed == 1 ? "" : "s")" : ""))
            if let badList {
                try Files.write(problems.map { $0.path + "\n" }.joined(), to: badList, what: "list of bad videos")
            }
            return problems.isEmpty && malformed == 0 ? .done : .data
        }
    }
}
