import Foundation
import NLData

/// Where a config value came from, for error messages.
public struct ConfigSource: Sendable, Equatable, CustomStringConvertible {
    public let file: String
    /// 0 when the value did not come from a line (a `--set` or a default).
    public let line: Int
    public var description: String { line > 0 ? "\(file):\(line)" : file }
}

/// A config error names the file and line (or `--set`) and says what is wrong.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let source: ConfigSource
    public let message: String
    public var description: String { "\(source): \(message)" }
}

/// The text of a config: `[section]` headers, `key = value` lines, `# comments`, and
/// `include = other.cfg` (relative to the including file) whose values later lines override.
/// Values stay text here; `Config` interprets them.
public struct ConfigFile: Sendable {
    public struct Entry: Sendable {
        public var value: String
        public var source: ConfigSource
    }

    /// section -> key -> entry, the last assignment of each key winning.
    public private(set) var sections: [String: [String: Entry]] = [:]
    /// Section names in the order they first appeared, with where (empty sections too).
    public private(set) var sectionOrder: [(name: String, source: ConfigSource)] = []

    public init() {}

    /// Reads `path` and the files it includes.
    public init(path: String) throws(ConfigError) {
        try read(path, including: [])
    }

    /// Parses config text; `name` stands for the file in errors, and includes are relative to
    /// `directory`.
    public init(text: String, name: String, directory: String = ".") throws(ConfigError) {
        try parse(TextFile.lines(of: text), name: name, directory: directory, including: [])
    }

    private mutating func read(_ path: String, including: [String]) throws(ConfigError) {
        let canonical = URL(fileURLWithPath: path).standardizedFileURL.path
        if including.contains(canonical) {
            throw ConfigError(source: ConfigSource(file: including.last!, line: 0), message: "includes itself through \(path)")
        }
        let lines: [TextFile.Line]
        do { lines = try TextFile.lines(path, what: "config file") } catch {
            throw ConfigError(source: ConfigSource(file: path, line: error.line ?? 0), message: error.problem)
        }
        try parse(lines, name: path, directory: (canonical as NSString).deletingLastPathComponent,
                  including: including + [canonical])
    }

    private mutating func parse(_ lines: [TextFile.Line], name: String, directory: String, including: [String]) throws(ConfigError) {
        var section: String?
        for (number, rawLine) in lines {
            let source = ConfigSource(file: name, line: number)
            let line = Self.stripComment(rawLine).trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else {
                    throw ConfigError(source: source, message: "a section header is [name], got '\(line)'")
                }
                let name = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                if !sectionOrder.contains(where: { $0.name == name }) { sectionOrder.append((name, source)) }
                section = name
                continue
            }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigError(source: source, message: "expected 'key = value', '[section]' or a # comment, got '\(line)'" + Self.otherFormat(lines))
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            let value = Self.unquote(line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces))
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw ConfigError(source: source, message: "'\(key)' is not a key (letters, digits and _)")
            }
            if key == "include" {
                let path = value.hasPrefix("/") ? value : (directory as NSString).appendingPathComponent(value)
                do { try read(path, including: including) } catch {
                    throw error.source.line == 0 && error.source.file == path
                        ? ConfigError(source: source, message: "include \(value): \(error.message)") : error
                }
                continue
            }
            guard let section else {
                throw ConfigError(source: source, message: "'\(key)' is outside any [section]" + Self.otherFormat(lines))
            }
            set(section: section, key: key, value: value, source: source)
        }
    }

    /// What a file that fails to parse is instead, when it is one of the frameworks' config
    /// formats its user would try first: the sentence to add to the error, or "".
    static func otherFormat(_ lines: [TextFile.Line]) -> String {
        let text = lines.map { $0.text.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        let format: String
        if text.contains(where: { $0.hasPrefix("_base_") || $0.contains("dict(") || $0.hasPrefix("import ") || $0.hasPrefix("from ") }) {
            format = "an mmaction2 (Python) config"
        } else if text.first?.hasPrefix("{") == true {
            format = "JSON"
        } else if text.contains(where: { $0.range(of: #"^[A-Za-z_][A-Za-z0-9_.]*:(\s|$)"#, options: .regularExpression) != nil }) {
            format = "YAML (as PySlowFast's configs are)"
        } else {
            return ""
        }
        return "; the file looks like \(format), but nltrain reads [section] and key = value lines: start from configs/i3d_nl.cfg (mmaction2's NL I3D recipe) or configs/i3d_nl_8x8.cfg (PySlowFast's), whose keys configs/README.md lists"
    }

    /// Sets one value, as a later line would.
    public mutating func set(section: String, key: String, value: String, source: ConfigSource) {
        if !sectionOrder.contains(where: { $0.name == section }) { sectionOrder.append((section, source)) }
        sections[section, default: [:]][key] = Entry(value: value, source: source)
    }

    /// Applies a command-line override "section.key=value".
    public mutating func apply(override assignment: String) throws(ConfigError) {
        let source = ConfigSource(file: "--set \(assignment)", line: 0)
        guard let equals = assignment.firstIndex(of: "="), let dot = assignment[..<equals].firstIndex(of: ".") else {
            throw ConfigError(source: source, message: "expected section.key=value, such as train.lr=0.01")
        }
        let section = String(assignment[..<dot]), key = String(assignment[assignment.index(after: dot)..<equals])
        let value = Self.unquote(String(assignment[assignment.index(after: equals)...]).trimmingCharacters(in: .whitespaces))
        set(section: section, key: key, value: value, source: source)
    }

    /// A line without its comment: '#' at the start or after whitespace, outside double quotes.
    static func stripComment(_ line: String) -> String {
        var quoted = false
        var previous: Character = " "
        for (offset, c) in line.enumerated() {
            if c == "\"" { quoted.toggle() }
            if c == "#" && !quoted && previous.isWhitespace { return String(line.prefix(offset)) }
            previous = c
        }
        return line
    }

    /// "a b" (quoted, to keep spaces or a '#') to a b.
    static func unquote(_ value: String) -> String {
        value.count >= 2 && value.hasPrefix("\"") && value.hasSuffix("\"") ? String(value.dropFirst().dropLast()) : value
    }
}
