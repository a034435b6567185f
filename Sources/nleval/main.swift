import ArgumentParser
import NLTrain

struct Command: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nleval", abstract: "Evaluate a checkpoint: top-1, top-5 and mean class accuracy (not yet implemented).")
    func run() throws {
        throw ValidationError("nleval is not implemented yet")
    }
}

Command.main()
