import ArgumentParser
import NLData

struct Command: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nlvideo", abstract: "Probe and decode videos with FFmpeg (not yet implemented).")
    func run() throws {
        throw ValidationError("nlvideo is not implemented yet")
    }
}

Command.main()
