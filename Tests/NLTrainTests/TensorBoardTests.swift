import Foundation

#if canImport(FoundationXML)
    import FoundationXML
#endif
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLLayers
import NLTensor
import NLVideo

/// TensorBoard event files written natively, and the run's pictures.
struct TensorBoardTests {
    /// CRC-32C against the known values (RFC 3720's test vectors, and "123456789").
    @Test func crc32c() {
        #expect(EventRecord.crc32c(Data("123456789".utf8)) == 0xE306_9283)
        #expect(EventRecord.crc32c(Data(count: 32)) == 0x8A91_36AA)
        #expect(EventRecord.crc32c(Data(repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(EventRecord.crc32c(Data((0..<32).map { UInt8($0) })) == 0x46DD_794E)
        #expect(EventRecord.crc32c(Data()) == 0)
    }

    /// A file TensorBoard's own writer wrote (scripts/fixtures/make_tensorboard_fixture.py): every
    /// record's two checksums are the ones this project computes, and its events read as written.
    @Test func readsWhatTensorBoardsWriterWrote() throws {
        let path = fixtureDirectory() + "/python_writer.tfevents"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let records = EventRecord.records(bytes)
        #expect(records.count == 9)
        #expect(
            records.reduce(Data()) { $0 + EventRecord.frame($1) } == bytes,
            "framed again, the records are the file byte for byte")
        let events = try readEventFile(path)
        #expect(events.first?.fileVersion == "brain.Event:2")
        #expect(events.compactMap { $0.texts["config/text_summary"] } == ["[train]\nlr = 0.01"])
        let losses = events.compactMap { e in e.scalars["train/loss"].map { (e.step, $0) } }
        #expect(losses.map(\.0) == [1, 2, 3] && losses.map(\.1) == [1.75, 1.5, 0.625])
        #expect(events.last?.scalars["val/top1"] == 0.5 && events.last?.step == 3)
    }

    /// The same events written here read back as TensorBoard's writer's do.
    @Test func writesWhatItReads() throws {
        let directory = scratchDirectory("files", made: true)
        let writer = try EventFileWriter(directory: directory)
        writer.text("[train]\nlr = 0.01", tag: "config/text_summary", step: 0)
        for (step, loss) in [(1, 1.75), (2, 1.5), (3, 0.625)] {
            writer.scalars([("train/loss", loss)], step: step)
            writer.scalars([("train/lr", 0.01 * Double(step))], step: step)
        }
        writer.scalars([("val/top1", 0.5)], step: 3)
        let ours = try readEventFile(writer.path),
            theirs = try readEventFile(fixtureDirectory() + "/python_writer.tfevents")
        #expect(ours == theirs)
        #expect(URL(fileURLWithPath: writer.path).lastPathComponent.hasPrefix("events.out.tfevents."))
    }

    /// A crash mid-record loses that record only.
    @Test func aCutFileKeepsItsWholeRecords() throws {
        let directory = scratchDirectory("files", made: true)
        let writer = try EventFileWriter(directory: directory)
        for step in 1...5 { writer.scalars([("train/loss", Double(step))], step: step) }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: writer.path))
        try bytes.dropLast(7).write(to: URL(fileURLWithPath: writer.path))
        #expect(try readEventFile(writer.path).compactMap { $0.scalars["train/loss"] } == [1, 2, 3, 4])
    }

    /// 400 classes: the report is well-formed, lists the 20 most confused pairs, keeps the classes in order.
    @Test func reportForFourHundredClasses() throws {
        var generator = SeededGenerator(seed: 9)
        let classes = (0..<400).map { "class \($0)" }
        let scores = (0..<1200).map { v -> (path: String, label: Int, probabilities: [Float]) in
            let label = v % 400
            var p = (0..<400).map { _ in generator.uniform() * 0.01 }
            p[generator.below(3) == 0 ? (label + 1 + generator.below(5)) % 400 : label] = 1
            return ("v\(v).mp4", label, p)
        }
        let report = EvaluationReport(Evaluator.score(scores, classes: classes), title: "400 classes")
        #expect(report.mostConfused().count == 20)
        #expect(wellFormed(report.svg) && report.svg.contains("class 399"))
        #expect(report.html.contains("<table>") && report.html.contains("<svg"))
    }
}

extension TensorBoardTests {
    /// A class name longer than the label column is cut where the picture writes it (it ran over
    /// the bars in a browser) and kept whole in its tooltip and in the HTML tables.
    @Test func longClassNamesAreCutInThePicture() throws {
        let long = String(repeating: "x", count: 120)
        let classes = [long, "short & <odd>"]
        let scores: [(path: String, label: Int, probabilities: [Float])] = [
            ("a.mp4", 0, [0.9, 0.1]), ("b.mp4", 1, [0.8, 0.2]),
        ]
        let report = EvaluationReport(Evaluator.score(scores, classes: classes), title: "long names")
        let texts = report.svg.components(separatedBy: "<text").dropFirst().map {
            $0.components(separatedBy: "</text>")[0]
        }
        #expect(wellFormed(report.svg))
        #expect(
            texts.allSatisfy { !$0.contains(long) } && texts.contains { $0.contains(String(long.prefix(25)) + "…") })
        #expect(report.svg.contains("<title>\(long)") && report.html.contains("<td>\(long)</td>"))
    }

    /// The matrix as people read one: axis titles, each predicted class named above its column, a
    /// colour legend, a cell's count and row share rounded as the tables round (87.5%, not 88%);
    /// no "most confused pairs" when every video was right.
    @Test func confusionMatrixAsPeopleExpectIt() throws {
        let classes = ["run", "walk", "jump"]
        var scores: [(path: String, label: Int, probabilities: [Float])] = (0..<8).map { ("r\($0)", 0, [0.9, 0.1, 0]) }
        scores[7].probabilities = [0.1, 0.9, 0]  // 7 of 8 runs right: 87.5%
        scores.append(("w", 1, [0, 1, 0]))
        let svg = EvaluationReport(Evaluator.score(scores, classes: classes), title: "t").svg
        #expect(wellFormed(svg))
        for words in [">predicted<", ">true<", "wrong: 0 to 100% of the row", ">87.5%<", ">12.5%<", ">jump<"] {
            #expect(svg.contains(words), "\(words)")
        }
        #expect(!svg.contains(">88%<") && svg.contains("most confused pairs"))
        let right = EvaluationReport(
            Evaluator.score([("w", 1, [0, 1, 0]), ("j", 2, [0, 0, 1])], classes: classes), title: "all right")
        #expect(!right.svg.contains("most confused pairs") && !right.html.contains("Most confused pairs"))
    }
}

/// Whether `text` parses as XML.
func wellFormed(_ text: String) -> Bool {
    XMLParser(data: Data(text.utf8)).parse()
}
