import Foundation
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLLayers
import NLModels
import NLTensor
import NLVideo

/// Faults at random points (issue 31): runs of the tiny config killed (-9) or signalled at random
/// moments, in training, checkpoint writing and validation alike, each resumed by the same
/// command, end with the weights, momentum and best checkpoint of a run never interrupted, bit
/// for bit; after every fault each checkpoint in the work directory loads. The delays come from a
/// fixed seed; where they land depends on the machine's speed, which is the point.
struct FaultInjectionTests {
    static let epochs = 12

    /// The uninterrupted run's work directory.
    static let straight: String = {
        let work = scratchDirectory("faults-straight")
        let r = try! run("nltrain", ["--config", tinyRunConfig(workDirectory: work, epochs: epochs)])
        precondition(r.status == 0, r.stderr)
        return work
    }()

    func lastCheckpoint(_ work: String) throws -> SafeTensors {
        let name = try String(contentsOfFile: "\(work)/last_checkpoint", encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
        return try SafeTensors(contentsOf: "\(work)/\(name)")
    }

    /// Interrupts runs of the tiny config with `signal` after random delays until one finishes;
    /// returns how many were interrupted.
    func interrupted(by signals: [Int32], seed: UInt64, work: String) throws -> Int {
        var generator = SeededGenerator(seed: seed)
        let config = tinyRunConfig(workDirectory: work, epochs: Self.epochs)
        for round in 0..<40 {
            let launched = try Launched("nltrain", ["--config", config])
            let delay = 0.1 + Double(generator.uniform()) * 0.9
            let signal = signals[generator.below(signals.count)]
            if launched.wait(until: { false }, seconds: delay) == false && !launched.process.isRunning {
                launched.process.waitUntilExit()
                #expect(launched.process.terminationStatus == 0, "round \(round): \(launched.stderr)")
                return round
            }
            let status = launched.signal(signal)
            let killed = launched.process.terminationReason == .uncaughtSignal && status == SIGKILL
            #expect(
                (signal == SIGKILL ? killed : status == 75) || status == 0,
                "round \(round), signal \(signal): exit \(status) \(launched.stderr)")
            if signal != SIGKILL {
                #expect(launched.stdout.contains("run the same command to") || status == 0, "\(launched.stdout)")
            }
            for name in try FileManager.default.contentsOfDirectory(atPath: work) where name.hasSuffix(".safetensors") {
                #expect(throws: Never.self, "round \(round): \(name)") {
                    try Checkpoint(path: "\(work)/\(name)").checkValues()
                }
            }
            if status == 0 { return round }
        }
        Issue.record("40 rounds did not finish the run")
        return 40
    }

    func expectTheUninterruptedRun(_ work: String) throws {
        let r = try run("nltrain", ["--config", tinyRunConfig(workDirectory: work, epochs: Self.epochs)])
        #expect(r.status == 0 && r.stdout.contains("nothing to do"), "\(r.stdout)\(r.stderr)")
        let (a, b) = (try lastCheckpoint(Self.straight), try lastCheckpoint(work))
        #expect(a.names == b.names)
        let differing = a.names.filter { a.entries[$0]!.bytes != b.entries[$0]!.bytes }
        #expect(differing.isEmpty, "differ: \(differing.prefix(5))")
        let (bestA, bestB) = (
            try SafeTensors(contentsOf: "\(Self.straight)/best.safetensors"),
            try SafeTensors(contentsOf: "\(work)/best.safetensors")
        )
        #expect(bestA.names.allSatisfy { bestA.entries[$0]!.bytes == bestB.entries[$0]?.bytes })
    }

    @Test func killedAtRandomPoints() throws {
        let work = scratchDirectory("faults-kill")
        let rounds = try interrupted(by: [SIGKILL], seed: 31, work: work)
        print("fault injection: kill -9 interrupted \(rounds) runs")
        try expectTheUninterruptedRun(work)
    }

    @Test func signalledAtRandomPoints() throws {
        let work = scratchDirectory("faults-signal")
        let rounds = try interrupted(by: [SIGTERM, SIGINT, SIGUSR1, SIGHUP], seed: 32, work: work)
        print("fault injection: SIGTERM, SIGINT, SIGUSR1 and SIGHUP stopped \(rounds) runs")
        try expectTheUninterruptedRun(work)
    }
}
