import ArgumentParser
import NLTrain

struct Command: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nlmodel", abstract: "Inspect, run and convert models (not yet implemented).")
    func run() throws {
        throw ValidationError("nlmodel is not implemented yet")
    }
}

Command.main()
