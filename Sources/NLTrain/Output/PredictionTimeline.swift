import Foundation

/// nlpredict --timeline: a long video's windows at a glance. Time runs along x; each class that
/// is the most probable in some window (at most eight, by their highest probability) has a band,
/// shaded in each window by its probability (white 0, dark blue 1); hovering a cell names it.
public enum PredictionTimeline {
    public static func svg(video: String, predictions: [Predictor.Prediction], classes: [String]) -> String {
        let windows = predictions.compactMap { p in p.window.map { (window: $0, probabilities: p.probabilities) } }
        let end = windows.map(\.window.end).max() ?? 1
        let leaders = Set(
            windows.compactMap { w in w.probabilities.indices.max { w.probabilities[$0] < w.probabilities[$1] } })
        let bands = leaders.sorted { a, b in
            let (pa, pb) = (windows.map { $0.probabilities[a] }.max()!, windows.map { $0.probabilities[b] }.max()!)
            return pa != pb ? pa > pb : a < b
        }.prefix(8)
        let (left, top, plotWidth, band) = (190.0, 40.0, 660.0, 26.0)
        let height = Int(top + band * Double(bands.count) + 50)
        var svg = SVG(width: Int(left + plotWidth + 30), height: height)
        svg.text(
            (video as NSString).lastPathComponent + ": the most probable classes over time", x: left, y: 22, size: 13,
            bold: true)
        func x(_ t: Double) -> Double { left + plotWidth * t / max(end, 1e-9) }
        let stride = windows.count > 1 ? windows[1].window.start - windows[0].window.start : end
        for (row, c) in bands.enumerated() {
            let y = top + band * Double(row)
            svg.text(classes[c], x: left - 8, y: y + band / 2 + 4, anchor: "end")
            svg.rect(left, y + 2, plotWidth, band - 4, fill: "#f4f4f4")
            for (window, probabilities) in windows {
                // Each window shades what it adds: up to the next one's start, or its end.
                let cellEnd = min(window.start + stride, window.end)
                let shade = Double(probabilities[c])
                svg.rect(
                    x(window.start), y + 2, max(x(cellEnd) - x(window.start), 0.5), band - 4,
                    fill: String(format: "rgba(31,78,160,%.3f)", shade),
                    title: String(format: "%.1f-%.1f s: %@ %.2f", window.start, window.end, classes[c], shade))
            }
        }
        let axis = top + band * Double(bands.count) + 6
        svg.line(left, axis, left + plotWidth, axis)
        for t in axisTicks(0, end, count: 8) {
            svg.line(x(t), axis, x(t), axis + 4)
            svg.text(tickLabel(t), x: x(t), y: axis + 17, size: 10, anchor: "middle")
        }
        svg.text("seconds", x: left + plotWidth, y: axis + 32, size: 10, anchor: "end", color: "#555")
        return svg.document
    }
}
