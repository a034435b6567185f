import Foundation
import NLTestSupport
import Testing
import NLData
import NLLayers
import NLModels
import NLTensor
import NLTrain
import NLVideo

/// Inputs as users bring them (issue 15): the corpus scripts/data/make_hostile_inputs.py writes at test
/// time (files from Python's csv module, pandas and spreadsheets, other line ends, damaged videos
/// of every container, stills, raw streams, hidden files, bad configs, bad output paths), each
/// case run as its command and held to its exit status and words.
struct HostileInputTests {
    struct Case: Decodable, CustomTestStringConvertible, Sendable {
        let name: String
        let args: [String]
        let status: Int32
        let contains: [String]
        let absent: [String]
        var testDescription: String { name }
    }

    static let cases: [Case] = {
        let directory = scratchDirectory("hostile")
        let script = "\(repositoryRoot)/scripts/data/make_hostile_inputs.py"
        precondition(
            try! run("/usr/bin/env", ["python3", script, directory, syntheticDatasetDirectory]).status == 0,
            "\(script) failed")
        let lines = try! String(contentsOfFile: "\(directory)/cases.jsonl", encoding: .utf8).split(separator: "\n")
        return lines.map { try! JSONDecoder().decode(Case.self, from: Data($0.utf8)) }
    }()

    @Test(arguments: cases)
    func answersAsItShould(_ c: Case) throws {
        let r = try run(c.args[0], Array(c.args.dropFirst()))
        let output = r.stdout + r.stderr
        #expect(r.status == c.status, "\(c.name): exit \(r.status), not \(c.status): \(output.suffix(800))")
        for words in c.contains {
            #expect(output.contains(words), "\(c.name): no '\(words)' in: \(output.suffix(800))")
        }
        for words in c.absent { #expect(!output.contains(words), "\(c.name): '\(words)' in: \(output.suffix(800))") }
    }
}
