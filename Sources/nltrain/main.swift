import ArgumentParser
import NLTrain

struct Command: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nltrain", abstract: "Train a Non-local I3D network from a plain-text config (not yet implemented).")
    func run() throws {
        throw ValidationError("nltrain is not implemented yet")
    }
}

Command.main()
