import Foundation

/// "90", "90s", "30m", "2h", "1h30m", "1d": seconds, for --max-time.
public func parseDuration(_ text: String) -> Double? {
    if let seconds = Double(text) { return seconds >= 0 ? seconds : nil }
    var total = 0.0, number = ""
    for c in text.lowercased() {
        if c.isNumber || c == "." { number.append(c); continue }
        guard let value = Double(number), let unit = ["s": 1.0, "m": 60, "h": 3600, "d": 86400][String(c)] else {
            return nil
        }
        total += value * unit
        number = ""
    }
    return number.isEmpty && !text.isEmpty ? total : nil
}
