import Foundation

/// The report as TensorBoard shows it after each validation (PySlowFast plots its confusion
/// matrix there too): a picture, and the names and numbers as a table of the text tab. The
/// picture has no lettering, since no library here draws text into pixels: the text tab names
/// the rows, in the same order.
extension EvaluationReport {
    /// The per-class top-1 as bars on grey tracks (left, one row per class) beside the confusion matrix (true
    /// class down, predicted across, in class order), shaded as in the SVG; RGB24 pixels.
    public var picture: (pixels: [UInt8], width: Int, height: Int) {
        let n = max(classes.count, 1)
        let cell = max(1, min(24, 480 / n)), side = cell * n
        let margin = 8, barWidth = 120, gap = 12
        let matrixLeft = margin + barWidth + gap
        let width = matrixLeft + side + margin, height = side + 2 * margin
        var pixels = [UInt8](repeating: 255, count: width * height * 3)
        func fill(_ x: Int, _ y: Int, _ w: Int, _ h: Int, _ color: (UInt8, UInt8, UInt8)) {
            for row in y..<(y + h) {
                for column in x..<(x + w) {
                    let at = (row * width + column) * 3
                    (pixels[at], pixels[at + 1], pixels[at + 2]) = color
                }
            }
        }
        let gridline: (UInt8, UInt8, UInt8) = (221, 221, 221)
        // The frames first, the cells over them; a gap of a pixel between cells where they are large.
        fill(matrixLeft - 1, margin - 1, side + 2, side + 2, (187, 187, 187))
        fill(matrixLeft, margin, side, side, cell >= 6 ? gridline : (255, 255, 255))
        fill(margin - 1, margin - 1, 1, side + 2, (187, 187, 187))
        let inset = cell >= 6 ? 1 : 0
        for (i, row) in counts.enumerated() {
            let y = margin + i * cell, total = row.reduce(0, +)
            if let accuracy = result.perClass[i].accuracy {
                fill(margin, y + inset, barWidth, cell - inset, (238, 238, 238))  // the bar's 100%
                fill(margin, y + inset, Int((Double(barWidth) * accuracy).rounded()), cell - inset, (76, 114, 176))
            }
            for (j, videos) in row.enumerated() {
                let color =
                    videos > 0
                    ? Self.shade(Double(videos) / Double(max(total, 1)), diagonal: i == j) : (255, 255, 255)
                fill(matrixLeft + j * cell + inset, y + inset, cell - inset, cell - inset, color)
            }
        }
        return (pixels, width, height)
    }

    /// The per-class top-1 and the most confused pairs as Markdown tables, with the picture's legend.
    public var markdown: String {
        func percent(_ share: Double?) -> String { share.map { String(format: "%.1f%%", $0 * 100) } ?? "-" }
        func cell(_ name: String) -> String { name.replacingOccurrences(of: "|", with: "\\|") }
        var lines = [
            "Picture: per-class top-1 as bars, beside the confusion matrix (rows: true class, columns: predicted, "
                + "both in the order below; shaded by the share of the row's videos, right answers in green).", "",
            "| class | top-1 | videos |", "|---|---:|---:|",
        ]
        for (i, entry) in result.perClass.enumerated() {
            lines.append("| \(cell(entry.name)) | \(percent(entry.accuracy)) | \(result.perClassVideos[i]) |")
        }
        let pairs = mostConfused()
        if !pairs.isEmpty {
            lines += ["", "| true class | predicted | videos | share of the true class |", "|---|---|---:|---:|"]
            for pair in pairs {
                let total = counts[pair.truth].reduce(0, +)
                lines.append(
                    "| \(cell(classes[pair.truth])) | \(cell(classes[pair.predicted])) | \(pair.videos) | "
                        + "\(percent(Double(pair.videos) / Double(max(total, 1)))) |")
            }
        }
        return lines.joined(separator: "\n")
    }
}
