import Foundation
import NLData
import NLDistributed
import NLLayers
import NLTensor
import NLVideo

/// Self-contained SVG drawing for the run's pictures (curves.svg, nleval --report): plain
/// elements, the viewer's own sans-serif font, nothing fetched.
struct SVG {
    let width: Int, height: Int
    private var body: [String] = []

    init(width: Int, height: Int) { (self.width, self.height) = (width, height) }

    static func escaped(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func number(_ v: Double) -> String { String(format: "%.1f", v) }

    mutating func text(
        _ s: String, x: Double, y: Double, size: Double = 11, anchor: String = "start", color: String = "#222",
        bold: Bool = false, rotate: Bool = false
    ) {
        let turn = rotate ? " transform=\"rotate(-90 \(Self.number(x)) \(Self.number(y)))\"" : ""
        body.append(
            "<text x=\"\(Self.number(x))\" y=\"\(Self.number(y))\" font-size=\"\(Self.number(size))\" text-anchor=\"\(anchor)\" fill=\"\(color)\""
                + (bold ? " font-weight=\"bold\"" : "") + turn + ">\(Self.escaped(s))</text>")
    }

    mutating func line(
        _ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, color: String = "#999", width: Double = 1,
        dashed: Bool = false
    ) {
        body.append(
            "<line x1=\"\(Self.number(x1))\" y1=\"\(Self.number(y1))\" x2=\"\(Self.number(x2))\" y2=\"\(Self.number(y2))\" stroke=\"\(color)\" stroke-width=\"\(width)\""
                + (dashed ? " stroke-dasharray=\"3,3\"" : "") + "/>")
    }

    mutating func rect(
        _ x: Double, _ y: Double, _ w: Double, _ h: Double, fill: String, stroke: String? = nil, title: String? = nil
    ) {
        let tip = title.map { "<title>\(Self.escaped($0))</title>" } ?? ""
        body.append(
            "<rect x=\"\(Self.number(x))\" y=\"\(Self.number(y))\" width=\"\(Self.number(w))\" height=\"\(Self.number(h))\" fill=\"\(fill)\""
                + (stroke.map { " stroke=\"\($0)\"" } ?? "") + ">\(tip)</rect>")
    }

    mutating func polyline(_ points: [(Double, Double)], color: String, width: Double = 1.5) {
        guard !points.isEmpty else { return }
        let list = points.map { "\(Self.number($0.0)),\(Self.number($0.1))" }.joined(separator: " ")
        body.append(
            "<polyline points=\"\(list)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"\(width)\" stroke-linejoin=\"round\"/>"
        )
    }

    mutating func dot(_ x: Double, _ y: Double, color: String, title: String? = nil) {
        let tip = title.map { "<title>\(Self.escaped($0))</title>" } ?? ""
        body.append(
            "<circle cx=\"\(Self.number(x))\" cy=\"\(Self.number(y))\" r=\"3\" fill=\"\(color)\">\(tip)</circle>")
    }

    /// An open circle around a point (a marked value).
    mutating func ring(_ x: Double, _ y: Double, color: String) {
        body.append(
            "<circle cx=\"\(Self.number(x))\" cy=\"\(Self.number(y))\" r=\"7\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\"/>"
        )
    }

    var document: String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" font-family=\"sans-serif\">\n"
            + "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n" + body.joined(separator: "\n") + "\n</svg>\n"
    }
}

/// "Nice" axis ticks covering lo...hi: about `count` round values (1, 2 or 5 times a power of 10).
func axisTicks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
    guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
    let raw = (hi - lo) / Double(count), power = pow(10, floor(log10(raw)))
    let step = [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= raw } ?? raw
    return stride(from: ceil(lo / step) * step, through: hi + step * 1e-9, by: step).map { $0 }
}

/// A tick's label: 0.001, 0.5, 20, 12k (and 0, never -0, for a tick that rounding left near zero).
func tickLabel(_ v: Double) -> String {
    if abs(v) >= 10_000 { return String(format: "%.0fk", v / 1000) }
    if abs(v) < 1e-12 { return "0" }
    return String(format: "%g", v)
}
