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

    /// A picture as TensorBoard's writer writes one (python_image.tfevents): the same events, and
    /// the PNG FFmpeg encodes here decodes to the pixels, as theirs does.
    @Test func writesPicturesAsTensorBoardDoes() throws {
        let theirs = try readEventFile(fixtureDirectory() + "/python_image.tfevents")
        let image = try #require(theirs.compactMap { $0.images["val/confusion_matrix"] }.first)
        #expect(image.width == 5 && image.height == 3 && image.colorspace == 3)
        let directory = scratchDirectory("files", made: true)
        let writer = try EventFileWriter(directory: directory)
        writer.image(png: image.png, width: 5, height: 3, tag: "val/confusion_matrix", step: 7)
        #expect(try readEventFile(writer.path) == theirs)
        func decoded(_ png: Data) throws -> [UInt8] {
            let path = directory + "/picture.png"
            try png.write(to: URL(fileURLWithPath: path))
            return Array(
                try run("/usr/bin/ffmpeg", ["-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
                    .output)
        }
        let pixels = (0..<45).map { UInt8($0 * 5) }
        #expect(try decoded(PNG.encode(rgb: pixels[...], width: 5, height: 3)) == pixels)
        #expect(try decoded(image.png) == pixels)
    }

    /// After each validation: the matrix and the per-class bars as a picture, the names in a table.
    @Test func validationPictureAndTable() throws {
        let classes = ["run", "walk | stroll", "jump"]
        var scores: [(path: String, label: Int, probabilities: [Float])] = (0..<4).map { ("r\($0)", 0, [0.9, 0.1, 0]) }
        scores[3].probabilities = [0.1, 0.9, 0]  // 3 of 4 runs right
        scores.append(("w", 1, [0, 1, 0]))
        let report = EvaluationReport(Evaluator.score(scores, classes: classes), title: "t")
        let picture = report.picture
        #expect(picture.width == 8 + 120 + 12 + 72 + 8 && picture.height == 72 + 16)
        func pixel(_ x: Int, _ y: Int) -> [UInt8] { Array(picture.pixels[((y * picture.width + x) * 3)...].prefix(3)) }
        let matrixLeft = 140, top = 8
        #expect(pixel(matrixLeft + 12, top + 12) == [101, 188, 101])  // run -> run: 75%, green
        #expect(pixel(matrixLeft + 24 + 12, top + 12) == [197, 207, 232])  // run -> walk: 25%, blue
        #expect(pixel(matrixLeft + 48 + 12, top + 48 + 12) == [255, 255, 255])  // jump: no videos
        #expect(pixel(8 + 89, top + 12) == [76, 114, 176] && pixel(8 + 91, top + 12) == [238, 238, 238])  // 75% of 120
        #expect(pixel(8 + 5, top + 48 + 12) == [255, 255, 255])  // jump: no bar, no track
        let table = report.markdown
        #expect(table.contains("| run | 75.0% | 4 |") && table.contains("| walk \\| stroll | 100.0% | 1 |"))
        #expect(table.contains("| jump | - | 0 |") && table.contains("| run | walk \\| stroll | 1 | 25.0% |"))
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
        // TensorBoard's picture: a pixel a cell, every class a row; its table names all 400.
        let picture = report.picture
        #expect(picture.width == 8 + 120 + 12 + 400 + 8 && picture.height == 400 + 16)
        #expect(report.markdown.contains("| class 399 |") && report.markdown.split(separator: "\n").count > 400)
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
