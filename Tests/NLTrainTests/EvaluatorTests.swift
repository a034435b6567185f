import Foundation
import NLTrain
import Testing
import NLData
import NLLayers
import NLTensor
import NLTestSupport
import NLVideo

/// nleval's metrics on scores whose answers are known by hand.
struct EvaluatorTests {
    let classes = ["a", "b", "c", "d", "e", "f"]

    func video(
        _ path: String, label: Int, _ probabilities: [Float]
    ) -> (path: String, label: Int, probabilities: [Float]) {
        (path, label, probabilities)
    }

    @Test func topOneTopFiveAndMeanClassAccuracy() throws {
        let scores = [
            video("1", label: 0, [0.9, 0.1, 0, 0, 0, 0]),  // right
            video("2", label: 0, [0.1, 0.5, 0.2, 0.1, 0.1, 0]),  // wrong; label 4th: in the top 5
            video("3", label: 1, [0.3, 0.6, 0.1, 0, 0, 0]),  // right
            video("4", label: 2, [0.5, 0.2, 0.01, 0.1, 0.1, 0.09]),  // wrong; label last of 6: not in the top 5
        ]
        let result = Evaluator.score(scores, missed: [("5", 2, "damaged")], classes: classes)
        #expect(result.videos == 5 && result.failed == 1)
        #expect(abs(result.top1 - 2.0 / 5) < 1e-12)
        #expect(abs(result.top5 - 3.0 / 5) < 1e-12)
        // Per class: a 1/2, b 1/1, c 0/2 (one missed); d, e, f have no videos and do not count.
        #expect(result.perClass.map(\.accuracy) == [0.5, 1, 0, nil, nil, nil])
        #expect(abs(result.meanClassAccuracy - 0.5) < 1e-12)
        // The loss of the videos read: -log of each one's probability of its label.
        let expected = -(log(0.9) + log(Double(Float(0.1))) + log(Double(Float(0.6))) + log(Double(Float(0.01)))) / 4
        #expect(abs(result.loss - expected) < 1e-6, "\(result.loss) vs \(expected)")
    }

    @Test func tiesGoToTheLowerClassAsArgmax() {
        let result = Evaluator.score([video("1", label: 1, [0.5, 0.5, 0, 0, 0, 0])], classes: classes)
        #expect(result.top1 == 0 && result.top5 == 1)
    }

    @Test func jsonAndScoreDump() throws {
        let result = Evaluator.score(
            [video("dir/x, y.mp4", label: 1, [0.25, 0.75, 0, 0, 0, 0])],
            missed: [("bad.mp4", 0, "bad.mp4: moov atom not found")], classes: classes)
        let json =
            try JSONSerialization.jsonObject(with: Data(result.json(extra: ["split": "val"]).utf8)) as! [String: Any]
        #expect(json["top1"] as? Double == 0.5 && json["videos"] as? Int == 2 && json["failed"] as? Int == 1)
        #expect(
            json["failures"] as? [[String: String]] == [["path": "bad.mp4", "error": "bad.mp4: moov atom not found"]])
        #expect(json["split"] as? String == "val" && json["mean_class_accuracy"] as? Double == 0.5)
        // per_class in class order, with each class's videos
        let perClass = json["per_class"] as! [[String: Any]]
        #expect(
            perClass.map { $0["class"] as! String } == classes
                && perClass.map { $0["videos"] as! Int } == [1, 1, 0, 0, 0, 0])
        #expect(
            perClass[1]["top1"] as? Double == 1 && perClass[0]["top1"] as? Double == 0 && perClass[2]["top1"] is NSNull)
        let csv = result.scoresCSV(classes: classes).split(separator: "\n")
        #expect(csv[0] == "path,label,a,b,c,d,e,f")
        #expect(csv[1] == "\"dir/x, y.mp4\",b,0.250000,0.750000,0.000000,0.000000,0.000000,0.000000")
    }
}
