/// One config key, declared on the field that holds its value: the key's name, its meaning and
/// how a value is read and shown, beside the field's type and default. The config's schema lists
/// the fields' projected values (`\.train.$seed`); parsing, range checks, `--print-config`, the
/// resolved config in checkpoints and the key tables of configs/README.md all follow from here.
///
///     @Key("seed", in: 0...Int(Int32.max), "seed of initialisation, shuffling, sampling and dropout")
///     public var seed = 0
@propertyWrapper
public struct Key<Value: Sendable>: Sendable {
    public var wrappedValue: Value
    /// The key as config files write it ("seed").
    public let name: String
    /// Its meaning, with its range or choices where the kind adds them.
    public let help: String
    private let parse: @Sendable (String) throws -> Value
    private let show: @Sendable (Value) -> String

    public var projectedValue: Key {
        get { self }
        set { self = newValue }
    }

    /// A key read by `parse` (a ValueProblem for text that does not fit) and shown by `show`, so
    /// that what `show` writes reads back as the same value: the shape of every kind below.
    public init(
        wrappedValue: Value, _ name: String, _ help: String, parse: @escaping @Sendable (String) throws -> Value,
        show: @escaping @Sendable (Value) -> String
    ) {
        self.wrappedValue = wrappedValue
        self.name = name
        self.help = help
        self.parse = parse
        self.show = show
    }

    /// Takes the value `text` gives, or throws without changing it.
    public mutating func read(_ text: String) throws { wrappedValue = try parse(text) }

    /// The value as config text.
    public var text: String { show(wrappedValue) }
}

extension Key: Equatable where Value: Equatable {
    /// Equal values: the name, help and parsing are the declaration's, the same for every instance.
    public static func == (a: Key, b: Key) -> Bool { a.wrappedValue == b.wrappedValue }
}

// MARK: The kinds of key

extension Key where Value == Int {
    public init(wrappedValue: Int, _ name: String, in range: ClosedRange<Int>, _ help: String) {
        self.init(wrappedValue: wrappedValue, name, help, parse: { try parseInt($0, in: range) }, show: { "\($0)" })
    }
}

extension Key where Value == Double {
    public init(wrappedValue: Double, _ name: String, in range: ClosedRange<Double>, _ help: String) {
        self.init(wrappedValue: wrappedValue, name, help, parse: { try parseDouble($0, in: range) }, show: format)
    }
}

extension Key where Value == Float {
    /// Shown in Float's own shortest form: 0.3, not 0.30000001192092896.
    public init(wrappedValue: Float, _ name: String, in range: ClosedRange<Double>, _ help: String) {
        self.init(
            wrappedValue: wrappedValue, name, help, parse: { Float(try parseDouble($0, in: range)) },
            show: { "\($0)" })
    }
}

extension Key where Value == Bool {
    public init(wrappedValue: Bool, _ name: String, _ help: String) {
        self.init(
            wrappedValue: wrappedValue, name, help,
            parse: { text in
                switch text.lowercased() {
                case "true", "yes", "on", "1": return true
                case "false", "no", "off", "0": return false
                default: throw ValueProblem(message: "expected true or false, got '\(text)'")
                }
            }, show: { $0 ? "true" : "false" })
    }
}

extension Key where Value == String {
    public init(wrappedValue: String, _ name: String, _ help: String) {
        self.init(wrappedValue: wrappedValue, name, help, parse: { $0 }, show: quotedIfNeeded)
    }
}

extension Key where Value: RawRepresentable & CaseIterable & Hashable, Value.RawValue == String {
    /// A value of an enum; the help lists its cases (from allCases: a new case is listed by
    /// itself), each with its meaning where `meanings` has one.
    public init(wrappedValue: Value, _ name: String, _ help: String, _ meanings: [Value: String] = [:]) {
        let names = Value.allCases.map(\.rawValue)
        let cases = Value.allCases.map { c in meanings[c].map { "\(c.rawValue) (\($0))" } ?? c.rawValue }
        self.init(
            wrappedValue: wrappedValue, name, "\(help): \(cases.joined(separator: ", "))",
            parse: { text in
                guard let choice = Value(rawValue: text) else {
                    throw ValueProblem(message: "expected one of \(names.joined(separator: ", ")), got '\(text)'")
                }
                return choice
            }, show: \.rawValue)
    }
}

extension Key where Value == [Int] {
    public init(
        wrappedValue: [Int], _ name: String, count: ClosedRange<Int>, in range: ClosedRange<Int>, _ help: String
    ) {
        self.init(
            wrappedValue: wrappedValue, name, help,
            parse: { try words($0, count: count).map { try parseInt($0, in: range) } },
            show: { $0.map(String.init).joined(separator: " ") })
    }
}

extension Key where Value == [Double] {
    public init(
        wrappedValue: [Double], _ name: String, count: ClosedRange<Int>, in range: ClosedRange<Double>,
        _ help: String
    ) {
        self.init(
            wrappedValue: wrappedValue, name, help,
            parse: { try words($0, count: count).map { try parseDouble($0, in: range) } },
            show: { $0.map(format).joined(separator: " ") })
    }
}

extension Key where Value == [String] {
    /// One to all of `allowed`, each once at most.
    public init(wrappedValue: [String], _ name: String, allowed: [String], _ help: String) {
        self.init(
            wrappedValue: wrappedValue, name, help,
            parse: { text in
                let values = try words(text, count: 1...allowed.count)
                if let bad = values.first(where: { !allowed.contains($0) }) {
                    throw ValueProblem(message: "'\(bad)' is not one of \(allowed.joined(separator: ", "))")
                }
                return values
            }, show: { $0.joined(separator: " ") })
    }
}

extension Key where Value == [[Int]] {
    /// Four stages of 0/1 digits, one per block ("111 1010 101010 010"); one digit for a stage
    /// applies it to every block of that stage.
    public init(wrappedValue: [[Int]], _ name: String, _ help: String) {
        self.init(
            wrappedValue: wrappedValue, name, help,
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
