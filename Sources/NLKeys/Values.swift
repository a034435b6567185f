/// A value that does not fit its key; the config adds where it came from.
public struct ValueProblem: Error {
    public let message: String

    public init(message: String) { self.message = message }
}

/// The words of a list value: separated by spaces, tabs or commas ("256 320", "1,0.8").
public func words(_ text: String, count: ClosedRange<Int>) throws -> [String] {
    let parts = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }).map(String.init)
    guard count.contains(parts.count) else {
        let expected =
            count.lowerBound == count.upperBound ? "\(count.lowerBound)" : "\(count.lowerBound) to \(count.upperBound)"
        throw ValueProblem(
            message: "expected \(expected) value\(count.upperBound == 1 ? "" : "s"), got \(parts.count) in '\(text)'")
    }
    return parts
}

public func parseInt(_ text: String, in range: ClosedRange<Int>) throws -> Int {
    guard let value = Int(text) else { throw ValueProblem(message: "expected a whole number, got '\(text)'") }
    guard range.contains(value) else {
        throw ValueProblem(message: "\(value) is outside \(range.lowerBound)...\(range.upperBound)")
    }
    return value
}

/// A decimal number as people write them in configs: 0.01, .5, 1e-4, -3. Hexadecimal (Swift's
/// Double would read 0x10 as 16), inf and nan are refused, as are numbers beyond Double's
/// range either way (1e400, and 1e-400, which Double reads as 0).
public func parseDouble(_ text: String, in range: ClosedRange<Double>) throws -> Double {
    let mantissa = text.prefix { $0 != "e" && $0 != "E" }, exponent = text.dropFirst(mantissa.count + 1)
    let digits = mantissa.drop { $0 == "+" || $0 == "-" }
    guard mantissa.count - digits.count <= 1, digits.contains(where: \.isNumber),
        digits.allSatisfy({ ($0.isASCII && $0.isNumber) || $0 == "." }), digits.filter({ $0 == "." }).count <= 1,
        text.count == mantissa.count || (!exponent.isEmpty && Int(exponent) != nil),
        let value = Double(text)
    else { throw ValueProblem(message: "expected a number, got '\(text)'") }
    guard value.isFinite, value != 0 || !digits.contains(where: { $0.isNumber && $0 != "0" }) else {
        throw ValueProblem(message: "\(text) is beyond the range of numbers (about 1e-308 to 1e308)")
    }
    guard range.contains(value) else {
        throw ValueProblem(
            message: "\(format(value)) is outside \(format(range.lowerBound))...\(format(range.upperBound))")
    }
    return value
}

/// The shortest text that reads back as the same number: 0.01, 1e-05, 256.
public func format(_ value: Double) -> String {
    if value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
    return "\(value)"
}

/// `text` as a config value that reads back as itself (ConfigFile.value): in double quotes, with
/// `\"` and `\\` inside, when it holds a '#', a quote or a backslash, or starts or ends with a
/// space; as it is otherwise.
public func quotedIfNeeded(_ text: String) -> String {
    guard text.contains(where: { "#\"\\".contains($0) }) || text.hasPrefix(" ") || text.hasSuffix(" ") else {
        return text
    }
    var quoted = "\""
    for c in text {
        if c == "\\" || c == "\"" { quoted.append("\\") }
        quoted.append(c)
    }
    return quoted + "\""
}
