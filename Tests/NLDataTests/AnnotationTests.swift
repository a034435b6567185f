import Foundation
import NLData
import NLTestSupport
import Testing
import NLTensor
import NLVideo

struct AnnotationTests {
    let directory = scratchDirectory("annotations", made: true)

    func touch(_ path: String) {
        try! FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: path, contents: Data([0]))
    }

    func write(_ name: String, _ text: String) -> String {
        let path = "\(directory)/\(name)"
        try! text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func kineticsCSV() throws {
        touch("\(directory)/videos/train/abseiling/aaa_000004_000014.mp4")
        touch("\(directory)/videos/train/air drumming/bbb_000010_000020.webm")  // a label with a space
        touch("\(directory)/videos/train/passing_ball/ccc_000001_000011.mkv")  // spaces as underscores
        touch("\(directory)/videos/train/kind, gentle/ddd_000001_000011.mp4")  // a quoted label with a comma
        let csv = write(
            "train.csv",
            """
            label,youtube_id,time_start,time_end,split
            abseiling,aaa,4,14,train
            air drumming,bbb,10,20,train
            passing ball,ccc,1,11,train
            "kind, gentle",ddd,1,11,train
            abseiling,zzz,5,15,train
            this line is broken
            """)
        let dataset = try Annotations.load(format: .kineticsCSV, annotations: csv, root: "\(directory)/videos")
        #expect(dataset.classes == ["abseiling", "air drumming", "kind, gentle", "passing ball"])
        #expect(dataset.entries.map(\.label) == [0, 1, 3, 2])
        #expect(dataset.entries[1].path.hasSuffix("air drumming/bbb_000010_000020.webm"))
        #expect(dataset.entries[0].source == "\(csv):2")
        #expect(
            dataset.missing.count == 1 && dataset.missing[0].source == "\(csv):6"
                && dataset.missing[0].path.contains("zzz_000005_000015"))
        #expect(dataset.malformed.count == 1 && dataset.malformed[0].source == "\(csv):7")
        #expect(dataset.summary == "4 videos, 4 classes; 1 missing, 1 malformed line")
    }

    @Test func listAndFolders() throws {
        touch("\(directory)/root/a/one.mp4")
        touch("\(directory)/root/b/two.webm")
        touch("\(directory)/root/b/notes.txt")
        let list = write("list.txt", "a/one.mp4 0\nb/two.webm 1\nb/gone.mp4 1\na/one.mp4 x\n")
        let fromList = try Annotations.load(format: .list, annotations: list, root: "\(directory)/root")
        #expect(fromList.entries.map(\.label) == [0, 1] && fromList.classes == ["0", "1"])
        #expect(fromList.missing.map(\.source) == ["\(list):3"] && fromList.malformed.map(\.source) == ["\(list):4"])
        let classes = write("classes.txt", "alpha\nbeta\n")
        let named = try Annotations.load(format: .list, annotations: list, root: "\(directory)/root", classes: classes)
        #expect(named.classes == ["alpha", "beta"])
        let folders = try Annotations.load(format: .folders, annotations: "root", root: directory)
        #expect(folders.classes == ["a", "b"] && folders.entries.map(\.label) == [0, 1])
    }

    @Test func unusableAnnotationsAreErrors() {
        #expect(throws: DataError.self) {
            try Annotations.load(format: .kineticsCSV, annotations: "\(directory)/none.csv", root: directory)
        }
        let empty = write("empty.csv", "label,youtube_id,time_start,time_end,split\nx,y,1,2,train\n")
        do { _ = try Annotations.load(format: .kineticsCSV, annotations: empty, root: directory) } catch {
            #expect(error.message.contains("no usable video") && error.message.contains("\(empty):2"))
        }
        #expect(throws: DataError.self) {
            try Annotations.load(format: .folders, annotations: "nowhere", root: directory)
        }
    }

    /// The same CSV with LF, CRLF (Python's csv module, Excel) or CR line ends, a byte-order mark
    /// (Excel's "CSV UTF-8") and trailing blanks; a reordered header with quoted fields.
    @Test func kineticsCSVFromOtherTools() throws {
        touch("\(directory)/k/train/abseiling/aaa_000004_000014.mp4")
        touch("\(directory)/k/train/kind, gentle/ddd_000001_000011.mp4")
        touch("\(directory)/k/train/abseiling/big_4294967296_4294967306.mp4")
        let text =
            "label,youtube_id,time_start,time_end,split\nabseiling,aaa,4,14,train  \n\"kind, gentle\",ddd,1.0,11,train\nabseiling,big,4294967296,4294967306,train\n"
        for (name, variant) in [
            ("lf", text), ("crlf", text.replacingOccurrences(of: "\n", with: "\r\n")),
            ("cr", text.replacingOccurrences(of: "\n", with: "\r")),
            ("bom", "\u{FEFF}" + text.replacingOccurrences(of: "\n", with: "\r\n")),
        ] {
            let dataset = try Annotations.load(
                format: .kineticsCSV, annotations: write("\(name).csv", variant), root: "\(directory)/k")
            #expect(
                dataset.entries.count == 3 && dataset.classes == ["abseiling", "kind, gentle"],
                "\(name): \(dataset.problems)")
            #expect(dataset.entries.map { String($0.source.suffix(2)) } == [":2", ":3", ":4"], "\(name)")
        }
        let reordered = write(
            "reordered.csv",
            "youtube_id,split,\"label\",time_end,time_start,is_cc\r\naaa,train,abseiling,14,4,0\r\n\"ddd\",train,\"kind, gentle\",11,1,0\r\n"
        )
        let dataset = try Annotations.load(format: .kineticsCSV, annotations: reordered, root: "\(directory)/k")
        #expect(dataset.entries.count == 2 && dataset.problems.isEmpty, "\(dataset.problems)")
    }

    /// Times that are not whole seconds are malformed lines with their numbers.
    @Test func kineticsTimes() throws {
        touch("\(directory)/t/train/a/aaa_000004_000014.mp4")
        let csv = write(
            "times.csv",
            "label,youtube_id,time_start,time_end,split\na,aaa,4,14,train\na,bbb,,14,train\na,ccc,.,14,train\na,ddd,.5,14,train\na,eee,4.5,14,train\na,fff,-4,6,train\n"
        )
        let dataset = try Annotations.load(format: .kineticsCSV, annotations: csv, root: "\(directory)/t")
        #expect(
            dataset.entries.count == 1
                && dataset.malformed.map { String($0.source.split(separator: ":").last!) } == ["3", "4", "5", "6", "7"])
        #expect(dataset.malformed.allSatisfy { $0.reason.contains("whole seconds") })
        #expect(
            Annotations.kineticsTime("4") == "000004" && Annotations.kineticsTime("0010") == "000010"
                && Annotations.kineticsTime("1234567") == "1234567")
        #expect(
            Annotations.kineticsTime("4294967296") == "4294967296" && Annotations.kineticsTime("") == nil
                && Annotations.kineticsTime("1e3") == nil)
    }

    @Test func unlabelledTestCSVsAreRefused() {
        let csv = write("test.csv", "youtube_id,time_start,time_end,split\naaa,4,14,test\n")
        do {
            _ = try Annotations.load(format: .kineticsCSV, annotations: csv, root: directory);
            Issue.record("read an unlabelled CSV")
        } catch {
            #expect(error.message.contains("\(csv):1: the header has no label column"), "\(error)")
        }
    }

    /// List files: paths with spaces (Kinetics' folder names), extra labels warned about.
    @Test func listFilesWithSpacesAndExtraLabels() throws {
        touch("\(directory)/l/pan left/x 1.mp4")
        touch("\(directory)/l/one.mp4")
        touch("\(directory)/l/two.mp4")
        touch("\(directory)/l/123")
        let list = write(
            "spaces.txt", "pan left/x 1.mp4 3\r\none.mp4\t2\r\ntwo.mp4 1 4 7\r\n123 0\r\npan left/x 1.mp4\r\n")
        let dataset = try Annotations.load(format: .list, annotations: list, root: "\(directory)/l")
        #expect(
            dataset.entries.map(\.label) == [3, 2, 1, 0] && dataset.entries[0].path.hasSuffix("pan left/x 1.mp4")
                && dataset.entries[3].path.hasSuffix("/123"))
        #expect(
            dataset.warnings.map(\.source) == ["\(list):3"]
                && dataset.warnings[0].message.contains("3 labels on one line"))
        #expect(dataset.malformed.map(\.source) == ["\(list):5"], "pan left/x 1.mp4 alone: '1.mp4' is no label")
    }

    /// macOS leaves ._NAME files beside copied videos and .DS_Store in folders: not videos.
    @Test func foldersSkipHiddenFiles() throws {
        touch("\(directory)/f/a/clip.mp4")
        touch("\(directory)/f/a/._clip.mp4")
        touch("\(directory)/f/.hidden/clip.mp4")
        let dataset = try Annotations.load(format: .folders, annotations: "f", root: directory)
        #expect(dataset.classes == ["a"] && dataset.entries.count == 1)
    }

    /// A file that yields nothing says why: counts, and the first lines of each kind of problem.
    @Test func noUsableVideoSaysWhy() {
        let rows = (1...8).map { "a,id\($0),1,2,train" }.joined(separator: "\n")
        let csv = write("none.csv", "label,youtube_id,time_start,time_end,split\n\(rows)\nbroken line\n")
        do {
            _ = try Annotations.load(format: .kineticsCSV, annotations: csv, root: directory); Issue.record("no error")
        } catch {
            #expect(error.message.contains("0 videos, 0 classes; 8 missing, 1 malformed line"), "\(error)")
            #expect(
                error.message.contains("8 missing, the first 5:")
                    && error.message.contains("\(csv):2: no video at \(directory)/train/a/id1_000001_000002.{mp4"))
            #expect(error.message.contains("1 malformed:\n    \(csv):10: expected 5 fields"))
        }
        let directoryAsFile = "\(directory)/adir"
        try! FileManager.default.createDirectory(atPath: directoryAsFile, withIntermediateDirectories: true)
        do { _ = try Annotations.load(format: .kineticsCSV, annotations: directoryAsFile, root: directory) } catch {
            #expect(error.message == "\(directoryAsFile): is a directory, not the annotation file")
        }
    }

    @Test func validationUsesTheTrainingClasses() throws {
        touch("\(directory)/v/train/b/x_000001_000002.mp4")
        touch("\(directory)/v/train/c/y_000001_000002.mp4")
        touch("\(directory)/v/val/c/z_000001_000002.mp4")
        let train = write("t.csv", "label,youtube_id,time_start,time_end,split\nb,x,1,2,train\nc,y,1,2,train\n")
        let val = write("v.csv", "label,youtube_id,time_start,time_end,split\nc,z,1,2,val\n")
        let dataset = try Annotations.load(
            format: .kineticsCSV, annotations: val, root: "\(directory)/v", classesFrom: train)
        #expect(dataset.classes == ["b", "c"] && dataset.entries.map(\.label) == [1])
    }
}
