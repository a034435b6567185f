import ArgumentParser
import NLTrain

struct Command: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nlbench", abstract: "Benchmark the training step, the decoder and the pipeline (not yet implemented).")
    func run() throws {
        throw ValidationError("nlbench is not implemented yet")
    }
}

Command.main()
