import Foundation
import NLData
import NLDistributed
import NLLayers
import NLModels
import NLTensor
import NLVideo

/// curves.svg: a run at a glance, from its metrics.jsonl: the loss in training and validation
/// (over-fitting shows as the two parting), the learning rate, and top-1 in training (the logged
/// batches) and in validation with the best epoch marked, against global iterations, with the
/// end of epochs marked (every k-th when there are many). The trainer redraws it at each
/// validation.
public enum TrainingCurves {
    struct Point { let step: Double, value: Double }

    /// The SVG for the lines of metrics.jsonl (malformed lines are passed over).
    public static func svg(metrics: String) -> String {
        var loss: [Point] = [], lr: [Point] = [], trainTop1: [Point] = [], valTop1: [Point] = [], valLoss: [Point] = []
        var epochEnds: [Int: Double] = [:]
        for line in TextFile.lines(of: metrics) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.text.utf8)) as? [String: Any],
                let step = (object["global_iteration"] as? NSNumber)?.doubleValue
            else { continue }
            let epoch = (object["epoch"] as? NSNumber)?.intValue ?? 0
            func value(_ key: String) -> Double? { (object[key] as? NSNumber)?.doubleValue }
            if object["mode"] as? String == "val" {
                if let top1 = value("top1") { valTop1.append(Point(step: step, value: top1 * 100)) }
                if let v = value("loss") { valLoss.append(Point(step: step, value: v)) }
            } else {
                if let v = value("loss") { loss.append(Point(step: step, value: v)) }
                if let v = value("lr") { lr.append(Point(step: step, value: v)) }
                if let v = value("top1") { trainTop1.append(Point(step: step, value: v * 100)) }
                epochEnds[epoch] = max(epochEnds[epoch] ?? 0, step)
            }
        }
        let steps = (loss + valTop1).map(\.step)
        let xRange = (steps.min() ?? 0)...max(steps.max() ?? 1, (steps.min() ?? 0) + 1)
        var svg = SVG(width: 900, height: 760)
        svg.text(
            "Training: loss, learning rate and top-1 against iterations (dashed: the end of an epoch)", x: 70, y: 24,
            size: 14, bold: true)
        let panels:
            [(title: String, series: [(name: String, color: String, points: [Point], dots: Bool)], yFromZero: Bool)] = [
                ("loss", [("training", "#1f77b4", loss, false), ("validation", "#d62728", valLoss, true)], false),
                ("learning rate", [("lr", "#2ca02c", lr, false)], true),
                (
                    "top-1 (%)",
                    [
                        ("training (logged batches)", "#ff7f0e", trainTop1, false),
                        ("validation", "#d62728", valTop1, true),
                    ], true
                ),
            ]
        for (k, panel) in panels.enumerated() {
            drawPanel(
                &svg, top: 50 + Double(k) * 235, title: panel.title, series: panel.series, xRange: xRange,
                yFromZero: panel.yFromZero, epochEnds: epochEnds,
                best: k == 2 ? bestOf(valTop1) : nil)
        }
        return svg.document
    }

    /// The highest point, the first of equals (the epoch best.safetensors keeps).
    static func bestOf(_ points: [Point]) -> Point? {
        points.reduce(nil) { best, p in best.map { p.value > $0.value ? p : $0 } ?? p }
    }

    private static func drawPanel(
        _ svg: inout SVG, top: Double, title: String,
        series: [(name: String, color: String, points: [Point], dots: Bool)],
        xRange: ClosedRange<Double>, yFromZero: Bool, epochEnds: [Int: Double], best: Point?
    ) {
        let (left, width, height) = (70.0, 800.0, 190.0)
        let values = series.flatMap { $0.points.map(\.value) }.filter(\.isFinite)
        var (lo, hi) = (yFromZero ? 0 : values.min() ?? 0, values.max() ?? 1)
        if hi <= lo { hi = lo + 1 }
        let span = hi - lo
        (lo, hi) = (yFromZero ? lo : lo - 0.05 * span, hi + 0.05 * span)
        func x(_ step: Double) -> Double {
            left + (step - xRange.lowerBound) / (xRange.upperBound - xRange.lowerBound) * width
        }
        func y(_ v: Double) -> Double { top + height - (v - lo) / (hi - lo) * height }
        svg.text(title, x: left, y: top - 6, size: 12, bold: true)
        for tick in axisTicks(lo, hi) {
            svg.line(left, y(tick), left + width, y(tick), color: "#eee")
            svg.text(tickLabel(tick), x: left - 6, y: y(tick) + 4, size: 10, anchor: "end", color: "#555")
        }
        for tick in axisTicks(xRange.lowerBound, xRange.upperBound, count: 8) {
            svg.text(tickLabel(tick), x: x(tick), y: top + height + 14, size: 10, anchor: "middle", color: "#555")
        }
        // Every k-th epoch, so that at most 20 are marked; numbers right of their line, clear of
        // the y-axis labels.
        let every = max(1, (epochEnds.count + 19) / 20)
        for (epoch, end) in epochEnds.sorted(by: { $0.key < $1.key }) where epoch % every == 0 {
            svg.line(x(end), top, x(end), top + height, color: "#bbb", dashed: true)
            svg.text("\(epoch)", x: x(end) + 2, y: top + 10, size: 9, anchor: "start", color: "#999")
        }
        if let best {
            svg.ring(x(best.step), y(best.value), color: "#d62728")
            svg.text(
                String(format: "best %.1f", best.value), x: x(best.step), y: y(best.value) + 16, size: 10,
                anchor: "middle", color: "#d62728")
        }
        svg.line(left, top + height, left + width, top + height, color: "#444")
        svg.line(left, top, left, top + height, color: "#444")
        var legend = left + width
        for s in series.reversed() {
            let finite = s.points.filter { $0.value.isFinite }
            svg.polyline(finite.map { (x($0.step), y($0.value)) }, color: s.color)
            if s.dots {
                for p in finite {
                    svg.dot(
                        x(p.step), y(p.value), color: s.color,
                        title: String(format: "%@ %.2f at iteration %.0f", s.name, p.value, p.step))
                }
            }
            svg.text(s.name, x: legend, y: top - 6, size: 11, anchor: "end", color: s.color)
            legend -= Double(s.name.count) * 6.5 + 16
        }
        svg.text("iteration", x: left + width / 2, y: top + height + 28, size: 10, anchor: "middle", color: "#555")
    }
}
