import ArgumentParser
import Foundation
import NLDistributed
import NLTrain
import NLData
import NLLayers
import NLModels
import NLTensor
import NLVideo

/// `--config FILE` and `--set section.key=value`: how every command is told its config, declared
/// once and shared through @OptionGroup, as swift-argument-parser's examples share options.
public struct ConfigOptions: ParsableArguments {
    @Option(help: "Config file (plain text; every key: configs/README.md).")
    public var config: String?

    @Option(
        name: .customLong("set"),
        help: ArgumentHelp("Override a config key (repeatable).", valueName: "section.key=value"))
    public var overrides: [String] = []

    @Option(name: .customLong("cfg-options"), parsing: .upToNextOption, help: .hidden)
    var cfgOptions: [String] = []

    public init() {}

    public func validate() throws {
        if !cfgOptions.isEmpty { throw ValidationError(Habits.cfgOptionsProblem) }
    }

    /// The config file with the overrides (without --config: the defaults with the overrides).
    public func resolve() throws -> Config { try Config(path: config, overrides: overrides) }

    /// The checkpoint at `path` (a path that is not there names the checkpoints there are) and
    /// the config to run it with: --config when given, else the checkpoint's own, with the overrides.
    public func checkpointAndConfig(_ path: String) throws -> (checkpoint: Checkpoint, config: Config) {
        if let missing = Habits.missingCheckpoint(path) { throw missing }
        let checkpoint = try Checkpoint(path: path)
        return (checkpoint, config != nil ? try resolve() : try checkpoint.config(overrides: overrides))
    }
}

/// The one way a command ends: its body returns (exit 0) or returns another status (75: not
/// finished), or its error becomes one line on standard error and the error's exit status
/// (`exitStatus(for:)`, the one mapping). Argument errors stay swift-argument-parser's (64).
public func runCommand(_ name: String, _ body: () throws -> ExitStatus) throws {
    let status: ExitStatus
    do { status = try body() } catch { exitReporting(error, command: name) }
    if status != .done { throw ExitCode(status.rawValue) }
}

/// Refuses (64), before any work, an output path that names the same file as an input or as
/// another output (Files.clash): `nleval --ckpt X --report X` would overwrite the checkpoint.
/// Paths not given are nil and pass.
public func refuseClashes(outputs: [(String, String?)], inputs: [(String, String?)]) throws {
    func given(_ pairs: [(String, String?)]) -> [(option: String, path: String)] {
        pairs.compactMap { o, p in p.map { (o, $0) } }
    }
    if let clash = Files.clash(outputs: given(outputs), inputs: given(inputs)) { throw UsageError(clash) }
}

/// --views CLIPSxCROPS (nleval, nlpredict), declared once: clips evenly spaced, 1 to 64 as
/// eval.num_clips (99999999999999 tried to allocate 800 TB), times 1 centre crop or 3.
public struct Views: ParsableArguments {
    static let problem = "--views takes CLIPSxCROPS, such as 10x3 (clips: 1 to 64, crops: 1 or 3)"

    @Option(
        help: ArgumentHelp(
            "Views per video (default: eval.num_clips x data.test_crop's 1 or 3).", valueName: "CLIPSxCROPS"))
    var views: String?

    public init() {}

    public func validate() throws {
        if views != nil && given == nil { throw ValidationError(Self.problem) }
    }

    /// The views given; nil: the config's.
    public var given: (clips: Int, crops: Int)? {
        guard let views else { return nil }
        let parts = views.lowercased().split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, (1...64).contains(parts[0]), [1, 3].contains(parts[1]) else { return nil }
        return (parts[0], parts[1])
    }

    /// "10x3": the views given, or the config's.
    public func text(_ config: Config) -> String {
        "\(given?.clips ?? config.eval.numClips)x\(given?.crops ?? (config.data.testCrop == .three ? 3 : 1))"
    }
}

extension DataSetup.Split: ExpressibleByArgument {}
extension AnnotationFormat: ExpressibleByArgument {}
extension Interpolation: ExpressibleByArgument {}

/// Every command: before anything else, the stopping signals a parent may have blocked are
/// unblocked (StopSignal.unblock), so SIGTERM acts from the first millisecond.
public protocol Command: ParsableCommand {}

extension Command {
    public static func main() {
        StopSignal.unblock()
        main(nil)
    }
}

/// A command that multiplies matrices: before anything else it has OpenBLAS run the best kernel
/// this CPU allows, or refuses a user's OPENBLAS_CORETYPE whose kernels this CPU cannot run (which
/// may start the command again or stop it; see BLASKernel.useTheBestKernel).
public protocol MatrixCommand: Command {}

extension MatrixCommand {
    public static func main() {
        StopSignal.unblock()
        BLASKernel.useTheBestKernel()
        main(nil)
    }
}

/// Prints "command: message" to standard error and exits with the error's status. In a
/// data-parallel job an error of one rank ends every rank (MPI_Abort, with the same status), so
/// none is left waiting for it; an error every rank shares is printed by rank 0 alone.
public func exitReporting(_ error: Error, command: String) -> Never {
    let (status, message) = exitStatus(for: error)
    guard let job = Communicator.world, job.size > 1 else {
        Files.emit("\(command): \(message)\n", to: .standardError)
        exit(status.rawValue)
    }
    if error is SharedFailure {
        if job.isRoot { Files.emit("\(command): \(message)\n", to: .standardError) }
        exit(status.rawValue)
    }
    Files.emit("\(command) (rank \(job.rank) of \(job.size)): \(message)\n", to: .standardError)
    job.abort(status: status.rawValue)
}
