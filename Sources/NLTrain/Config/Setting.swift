import Foundation
import NLModels
import NLData
import NLLayers
import NLTensor
import NLVideo

/// A value that does not fit its key; the config adds where it came from.
struct ValueProblem: Error {
    let message: String
}

/// One key of a config section: its name, its help text, and how it reads a value into, and
/// shows it from, the section's typed settings.
struct Setting<Target> {
    let key: String
    let help: String
    let read: (inout Target, String) throws -> Void
    let show: (Target) -> String
}

extension Setting {
    /// A key read by `parse` and shown by `show`: the shape of every kind below.
    static func value<Value>(
        _ key: String, _ path: WritableKeyPath<Target, Value>, _ help: String,
        parse: @escaping (String) throws -> Value, show: @escaping (Value) -> String
    ) -> Setting {
        Setting(
            key: key, help: help, read: { target, text in target[keyPath: path] = try parse(text) },
            show: { show($0[keyPath: path]) })
    }

    static func int(
        _ key: String, _ path: WritableKeyPath<Target, Int>, in range: ClosedRange<Int>, _ help: String
    )
        -> Setting
    {
        value(key, path, help, parse: { try parseInt($0, in: range) }, show: { "\($0)" })
    }

    static func double(
        _ key: String, _ path: WritableKeyPath<Target, Double>, in range: ClosedRange<Double>, _ help: String
    ) -> Setting {
        value(key, path, help, parse: { try parseDouble($0, in: range) }, show: format)
    }

    /// Shown in Float's own shortest form: 0.3, not 0.30000001192092896.
    static func float(
        _ key: String, _ path: WritableKeyPath<Target, Float>, in range: ClosedRange<Double>, _ help: String
    ) -> Setting {
        value(key, path, help, parse: { Float(try parseDouble($0, in: range)) }, show: { "\($0)" })
    }

    static func bool(_ key: String, _ path: WritableKeyPath<Target, Bool>, _ help: String) -> Setting {
        value(
            key, path, help,
            parse: { text in
                switch text.lowercased() {
                case "true", "yes", "on", "1": return true
                case "false", "no", "off", "0": return false
                default: throw ValueProblem(message: "expected true or false, got '\(text)'")
                }
            }, show: { $0 ? "true" : "false" })
    }

    static func string(_ key: String, _ path: WritableKeyPath<Target, String>, _ help: String) -> Setting {
        value(key, path, help, parse: { $0 }, show: quotedIfNeeded)
    }

    /// A value of an enum; the help lists its cases (from allCases: a new case is listed by
    /// itself), each with its meaning where `meanings` has one.
    static func choice<Choice: RawRepresentable & CaseIterable & Hashable>(
        _ key: String, _ path: WritableKeyPath<Target, Choice>, _ help: String, _ meanings: [Choice: String] = [:]
    ) -> Setting where Choice.RawValue == String {
        let names = Choice.allCases.map(\.rawValue)
        let cases = Choice.allCases.map { c in meanings[c].map { "\(c.rawValue) (\($0))" } ?? c.rawValue }
        return value(
            key, path, "\(help): \(cases.joined(separator: ", "))",
            parse: { text in
                guard let choice = Choice(rawValue: text) else {
                    throw ValueProblem(message: "expected one of \(names.joined(separator: ", ")), got '\(text)'")
                }
                return choice
            }, show: \.rawValue)
    }

    static func ints(
        _ key: String, _ path: WritableKeyPath<Target, [Int]>, count: ClosedRange<Int>, in range: ClosedRange<Int>,
        _ help: String
    ) -> Setting {
        value(
            key, path, help, parse: { try words($0, count: count).map { try parseInt($0, in: range) } },
            show: { $0.map(String.init).joined(separator: " ") })
    }

    static func doubles(
        _ key: String, _ path: WritableKeyPath<Target, [Double]>, count: ClosedRange<Int>,
        in range: ClosedRange<Double>, _ help: String
    ) -> Setting {
        value(
            key, path, help, parse: { try words($0, count: count).map { try parseDouble($0, in: range) } },
            show: { $0.map(format).joined(separator: " ") })
    }

    static func strings(
        _ key: String, _ path: WritableKeyPath<Target, [String]>, allowed: [String], _ help: String
    ) -> Setting {
        value(
            key, path, help,
            parse: { text in
                let values = try words(text, count: 1...allowed.count)
                if let bad = values.first(where: { !allowed.contains($0) }) {
                    throw ValueProblem(message: "'\(bad)' is not one of \(allowed.joined(separator: ", "))")
                }
                return values
            }, show: { $0.joined(separator: " ") })
    }

    static func size3(_ key: String, _ path: WritableKeyPath<Target, Size3>, _ help: String) -> Setting {
        value(
            key, path, help,
            parse: { text in
                let v = try words(text, count: 3...3).map { try parseInt($0, in: 1...99) }
                return Size3(v[0], v[1], v[2])
            }, show: { "\($0.t) \($0.h) \($0.w)" })
    }

    /// Four stages of 0/1 digits, one per block ("111 1010 101010 010"); one digit for a stage
    /// applies it to every block of that stage.
    static func pattern(_ key: String, _ path: WritableKeyPath<Target, [[Int]]>, _ help: String) -> Setting {
        value(
            key, path, help,
            parse: { text in
                let stages = try words(text, count: 4...4)
                guard stages.allSatisfy({ $0.allSatisfy { $0 == "0" || $0 == "1" } }) else {
                    throw ValueProblem(
                        message:
                            "expected four groups of 0/1 digits, one digit per block, such as '111 1010 101010 010'")
                }
                return stages.map { $0.map { $0 == "1" ? 1 : 0 } }
            }, show: { $0.map { $0.map(String.init).joined() }.joined(separator: " ") })
    }
}

func words(_ text: String, count: ClosedRange<Int>) throws -> [String] {
    let parts = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }).map(String.init)
    guard count.contains(parts.count) else {
        let expected =
            count.lowerBound == count.upperBound ? "\(count.lowerBound)" : "\(count.lowerBound) to \(count.upperBound)"
        throw ValueProblem(
            message: "expected \(expected) value\(count.upperBound == 1 ? "" : "s"), got \(parts.count) in '\(text)'")
    }
    return parts
}

func parseInt(_ text: String, in range: ClosedRange<Int>) throws -> Int {
    guard let value = Int(text) else { throw ValueProblem(message: "expected a whole number, got '\(text)'") }
    guard range.contains(value) else {
        throw ValueProblem(message: "\(value) is outside \(range.lowerBound)...\(range.upperBound)")
    }
    return value
}

/// A decimal number as people write them in configs: 0.01, .5, 1e-4, -3. Hexadecimal (Swift's
/// Double would read 0x10 as 16), inf and nan are refused, as are numbers beyond Double's
/// range either way (1e400, and 1e-400, which Double reads as 0).
func parseDouble(_ text: String, in range: ClosedRange<Double>) throws -> Double {
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
func format(_ value: Double) -> String {
    if value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
    return "\(value)"
}

/// `text` as a config value that reads back as itself (ConfigFile.value): in double quotes, with
/// `\"` and `\\` inside, when it holds a '#', a quote or a backslash, or starts or ends with a
/// space; as it is otherwise.
func quotedIfNeeded(_ text: String) -> String {
    guard text.contains(where: { "#\"\\".contains($0) }) || text.hasPrefix(" ") || text.hasSuffix(" ") else {
        return text
    }
    return "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}
