import Foundation
import NLData
import Testing

struct AnnotationTests {
    let directory: String = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("nl-annotations-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    func touch(_ path: String) {
        try! FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: path, contents: Data([0]))
    }

    func write(_ name: String, _ text: String) -> String {
        let path = "\(directory)/\(name)"
        try! text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func kineticsCSV() throws {
        touch("\(directory)/videos/train/abseiling/aaa_000004_000014.mp4")
        touch("\(directory)/videos/train/air drumming/bbb_000010_000020.webm")      // a label with a space
        touch("\(directory)/videos/train/passing_ball/ccc_000001_000011.mkv")       // spaces as underscores
        touch("\(directory)/videos/train/kind, gentle/ddd_000001_000011.mp4")       // a quoted label with a comma
        let csv = write("train.csv", """
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
        #expect(dataset.missing.count == 1 && dataset.missing[0].source == "\(csv):6" && dataset.missing[0].path.contains("zzz_000005_000015"))
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
        #expect(throws: DataError.self) { try Annotations.load(format: .kineticsCSV, annotations: "\(directory)/none.csv", root: directory) }
        let empty = write("empty.csv", "label,youtube_id,time_start,time_end,split\nx,y,1,2,train\n")
        do { _ = try Annotations.load(format: .kineticsCSV, annotations: empty, root: directory) } catch {
            #expect(error.message.contains("no usable video") && error.message.contains("\(empty):2"))
        }
        #expect(throws: DataError.self) { try Annotations.load(format: .folders, annotations: "nowhere", root: directory) }
    }

    @Test func validationUsesTheTrainingClasses() throws {
        touch("\(directory)/v/train/b/x_000001_000002.mp4")
        touch("\(directory)/v/train/c/y_000001_000002.mp4")
        touch("\(directory)/v/val/c/z_000001_000002.mp4")
        let train = write("t.csv", "label,youtube_id,time_start,time_end,split\nb,x,1,2,train\nc,y,1,2,train\n")
        let val = write("v.csv", "label,youtube_id,time_start,time_end,split\nc,z,1,2,val\n")
        let dataset = try Annotations.load(format: .kineticsCSV, annotations: val, root: "\(directory)/v", classesFrom: train)
        #expect(dataset.classes == ["b", "c"] && dataset.entries.map(\.label) == [1])
    }
}
