import Foundation
import NLData
import NLDistributed
import NLLayers
import NLModels
import NLTensor
import NLVideo

/// nleval --report: per-class accuracy and the confusion matrix as a picture (SVG), or as a page
/// (HTML: the picture and the tables), self-contained. The matrix keeps the classes in order
/// (true down, predicted across, both labelled where they fit), shades each row by the share of
/// its videos (row-normalised, with a colour legend) with the count and the share in each cell
/// where they fit, and lists the most confused pairs beside it (when there are any), so that 400
/// classes stay readable. Percentages are rounded alike everywhere (one decimal).
public struct EvaluationReport {
    public let result: EvaluationResult
    /// Title line (the checkpoint, the split, the views).
    public let title: String
    /// counts[true][predicted] over the videos that were read.
    let counts: [[Int]]
    let classes: [String]

    public init(_ result: EvaluationResult, title: String) {
        self.result = result
        self.title = title
        classes = result.perClass.map(\.name)
        var counts = [[Int]](repeating: [Int](repeating: 0, count: classes.count), count: classes.count)
        for (_, label, probabilities) in result.scores where label < classes.count {
            if let predicted = Evaluator.classesByScore(probabilities).first, predicted < classes.count {
                counts[label][predicted] += 1
            }
        }
        self.counts = counts
    }

    /// The `count` largest off-diagonal cells: (true class, predicted class, videos).
    public func mostConfused(_ count: Int = 20) -> [(truth: Int, predicted: Int, videos: Int)] {
        var cells: [(truth: Int, predicted: Int, videos: Int)] = []
        for (i, row) in counts.enumerated() {
            for (j, n) in row.enumerated() where i != j && n > 0 { cells.append((i, j, n)) }
        }
        return Array(
            cells.sorted {
                $0.videos != $1.videos ? $0.videos > $1.videos : ($0.truth, $0.predicted) < ($1.truth, $1.predicted)
            }.prefix(count))
    }

    /// The report as SVG or, for a path ending in .html, as an HTML page.
    public func document(forPath path: String) -> String { path.lowercased().hasSuffix(".html") ? html : svg }

    public var svg: String { picture(titled: true) }

    /// The picture; untitled inside the HTML page, which has the title as its heading.
    private func picture(titled: Bool) -> String {
        let n = max(classes.count, 1)
        let cell = max(1.0, min(24, 640 / Double(n)))
        let labelled = cell >= 9
        let labelWidth = labelled ? Double(classes.map { shorten($0).count }.max() ?? 4) * 6.2 + 8 : 10
        let barLeft = 20.0, barWidth = 170.0
        // The bars' percentages stand right of them, the class names right-aligned before the matrix.
        // Room above the matrix for the predicted classes' names, written upwards.
        let columnLabels = labelled ? labelWidth : 0
        let matrixLeft = barLeft + barWidth + (labelled ? 70 : 30) + labelWidth,
            matrixTop = (titled ? 120.0 : 60.0) + columnLabels + 20, side = cell * Double(n)
        let pairsLeft = matrixLeft + max(side, 230) + 30
        let pairs = mostConfused()
        var svg = SVG(
            width: Int(pairsLeft + 380), height: Int(matrixTop + max(side + 70, 22 * Double(max(pairs.count, 1)) + 10)))
        if titled {
            svg.text(title, x: 20, y: 26, size: 14, bold: true)
            svg.text(result.summary, x: 20, y: 46, size: 12, color: "#444")
        }
        let headTop = matrixTop - columnLabels - 20
        svg.text("per-class top-1", x: barLeft, y: matrixTop - 10, size: 12, bold: true)
        svg.text("confusion matrix (rows: true class)", x: matrixLeft, y: headTop - 30, size: 12, bold: true)
        svg.text(
            "shaded by the share of the row's videos; cells: videos, share", x: matrixLeft, y: headTop - 17, size: 10,
            color: "#444")
        svg.text("predicted", x: matrixLeft + side / 2, y: headTop - 3, size: 11, anchor: "middle", bold: true)
        svg.text(
            "true", x: barLeft + barWidth + 60, y: matrixTop + side / 2, size: 11, anchor: "middle", bold: true,
            rotate: true)
        legend(&svg, x: matrixLeft, y: matrixTop + side + 26)
        for (j, name) in classes.enumerated() where labelled {
            svg.text(
                shorten(name), x: matrixLeft + (Double(j) + 0.7) * cell, y: matrixTop - 6, size: min(11, cell * 0.8),
                rotate: true)
        }
        for (i, row) in counts.enumerated() {
            let y = matrixTop + Double(i) * cell, total = row.reduce(0, +)
            let accuracy = result.perClass[i].accuracy
            let percent = accuracy.map { String(format: "%.1f%%", $0 * 100) } ?? "-"
            // Per-class accuracy: a bar per class, on the matrix's rows.
            svg.rect(
                barLeft, y, barWidth * (accuracy ?? 0), max(cell - (cell > 3 ? 1 : 0), 1), fill: "#4c72b0",
                title: "\(classes[i]): " + (accuracy.map { String(format: "%.1f%%", $0 * 100) } ?? "no videos"))
            if labelled {
                svg.text(
                    percent, x: barLeft + barWidth * (accuracy ?? 0) + 3, y: y + cell * 0.72, size: min(10, cell * 0.8),
                    color: "#444")
                svg.text(
                    shorten(classes[i]), x: matrixLeft - 6, y: y + cell * 0.72, size: min(11, cell * 0.8), anchor: "end"
                )
            }
            for (j, videos) in row.enumerated() where videos > 0 {
                let share = Double(videos) / Double(max(total, 1))
                svg.rect(
                    matrixLeft + Double(j) * cell, y, cell, cell, fill: shade(share, diagonal: i == j),
                    title:
                        "\(classes[i]) -> \(classes[j]): \(videos) of \(total) videos (\(String(format: "%.1f", share * 100))%)"
                )
                if cell >= 18 {
                    let color = share > 0.5 ? "white" : "#222"
                    svg.text(
                        "\(videos)", x: matrixLeft + (Double(j) + 0.5) * cell, y: y + cell * 0.45, size: 9,
                        anchor: "middle", color: color)
                    svg.text(
                        String(format: "%.1f%%", share * 100), x: matrixLeft + (Double(j) + 0.5) * cell,
                        y: y + cell * 0.88, size: 7, anchor: "middle", color: color)
                }
            }
        }
        svg.rect(matrixLeft, matrixTop, side, side, fill: "none", stroke: "#bbb")
        svg.text(
            "\(n) classes; \(result.failed) unreadable video\(result.failed == 1 ? "" : "s") left out", x: matrixLeft,
            y: matrixTop + side + 14, size: 10, color: "#666")
        if !pairs.isEmpty {
            svg.text("most confused pairs", x: pairsLeft, y: matrixTop - 30, size: 12, bold: true)
            svg.text(
                "true -> predicted: videos (share of the true class)", x: pairsLeft, y: matrixTop - 17, size: 10,
                color: "#444")
        }
        for (k, pair) in pairs.enumerated() {
            let total = counts[pair.truth].reduce(0, +)
            svg.text(
                String(
                    format: "%2d. %@ -> %@: %d (%.1f%%)", k + 1, shorten(classes[pair.truth]),
                    shorten(classes[pair.predicted]), pair.videos,
                    Double(pair.videos) / Double(max(total, 1)) * 100), x: pairsLeft,
                y: matrixTop + 11 + Double(k) * 22, size: 11)
        }
        return svg.document
    }

    public var html: String {
        func row(_ cells: [String]) -> String {
            "<tr>" + cells.map { "<td>\(SVG.escaped($0))</td>" }.joined() + "</tr>"
        }
        let perClass = result.perClass.enumerated().map { i, c in
            row([c.name, c.accuracy.map { String(format: "%.1f%%", $0 * 100) } ?? "-", "\(counts[i].reduce(0, +))"])
        }.joined(separator: "\n")
        let pairs = mostConfused().map { row([classes[$0.truth], classes[$0.predicted], "\($0.videos)"]) }.joined(
            separator: "\n")
        let pairsSection =
            pairs.isEmpty
            ? ""
            : "<h3>Most confused pairs</h3>\n<table><tr><th>true class</th><th>predicted</th><th>videos</th></tr>\n\(pairs)\n</table>"
        return """
            <!DOCTYPE html>
            <html><head><meta charset="utf-8"><title>\(SVG.escaped(title))</title>
            <style>body{font-family:sans-serif;margin:20px}table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}th{background:#f4f4f4}</style>
            </head><body>
            <h2>\(SVG.escaped(title))</h2>
            <p>\(SVG.escaped(result.summary))</p>
            \(picture(titled: false))
            \(pairsSection)
            <h3>Per-class top-1</h3>
            <table><tr><th>class</th><th>top-1</th><th>videos read</th></tr>
            \(perClass)
            </table>
            </body></html>

            """
    }

    /// The shades' key: a scale of shares 0 to 100%, for wrong answers (blue) and right (green).
    private func legend(_ svg: inout SVG, x: Double, y: Double) {
        for (k, diagonal) in [false, true].enumerated() {
            let top = y + Double(k) * 14
            for step in 0..<20 {
                svg.rect(x + Double(step) * 6, top, 6, 10, fill: shade((Double(step) + 0.5) / 20, diagonal: diagonal))
            }
            svg.text(
                diagonal ? "right (diagonal): 0 to 100% of the row" : "wrong: 0 to 100% of the row", x: x + 126,
                y: top + 9, size: 9, color: "#444")
        }
    }

    private func shade(_ share: Double, diagonal: Bool) -> String {
        let (r, g, b) = Self.shade(share, diagonal: diagonal)
        return String(format: "#%02x%02x%02x", r, g, b)
    }

    /// White to dark blue by the row's share; the diagonal (right answers) in green.
    static func shade(_ share: Double, diagonal: Bool) -> (UInt8, UInt8, UInt8) {
        let t = max(0.08, min(1, share))
        let (r, g, b) = diagonal ? (1 - 0.8 * t, 1 - 0.35 * t, 1 - 0.8 * t) : (1 - 0.9 * t, 1 - 0.75 * t, 1 - 0.35 * t)
        return (UInt8(r * 255), UInt8(g * 255), UInt8(b * 255))
    }

    /// A class name cut to 26 characters where the picture lists it (the tooltips and tables keep it whole).
    private func shorten(_ name: String) -> String { name.count > 26 ? String(name.prefix(25)) + "…" : name }
}
