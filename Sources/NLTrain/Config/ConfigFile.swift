import Foundation
import NLKeys
import NLData
import NLLayers
import NLModels
import NLTensor
import NLVideo

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
            throw ConfigError(
                source: ConfigSource(file: including.last!, line: 0), message: "includes itself through \(path)")
        }
        let lines: [TextFile.Line]
        do { lines = try TextFile.lines(path, what: "config file") } catch {
            throw ConfigError(source: ConfigSource(file: path, line: error.line ?? 0), message: error.problem)
        }
        try parse(
            lines, name: path, directory: (canonical as NSString).deletingLastPathComponent,
            including: including + [canonical])
    }

    private mutating func parse(
        _ lines: [TextFile.Line], name: String, directory: String, including: [String]
    ) throws(ConfigError) {
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
                throw ConfigError(
                    source: source,
                    message: "expected 'key = value', '[section]' or a # comment, got '\(line)'"
                        + Self.otherFormat(lines))
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            let value: String
            do { value = try Self.value(line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)) } catch
            {
                throw ConfigError(source: source, message: "\(key): \(error.message)")
            }
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
                throw ConfigError(
                    source: source, message: "'\(key)' is outside any [section]" + Self.otherFormat(lines))
            }
            set(section: section, key: key, value: value, source: source)
        }
    }

    /// What a file that fails to parse is instead, when it is one of the frameworks' config
    /// formats its user would try first: the sentence to add to the error, or "".
    static func otherFormat(_ lines: [TextFile.Line]) -> String {
        let text = lines.map { $0.text.trimmingCharacters(in: .whitespaces) }.filter {
            !$0.isEmpty && !$0.hasPrefix("#")
        }
        let format: String
        if text.contains(where: {
            $0.hasPrefix("_base_") || $0.contains("dict(") || $0.hasPrefix("import ") || $0.hasPrefix("from ")
        }) {
            format = "an mmaction2 (Python) config"
        } else if text.first?.hasPrefix("{") == true {
            format = "JSON"
        } else if text.contains(where: {
            $0.range(of: #"^[A-Za-z_][A-Za-z0-9_.]*:(\s|$)"#, options: .regularExpression) != nil
        }) {
            format = "YAML (as PySlowFast's configs are)"
        } else {
            return ""
        }
        return
            "; the file looks like \(format), but nltrain reads [section] and key = value lines: start from configs/i3d_nl.cfg (mmaction2's NL I3D recipe) or configs/i3d_nl_8x8.cfg (PySlowFast's), whose keys configs/README.md lists"
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
        let raw = String(assignment[assignment.index(after: equals)...])
        // Every value goes into the resolved config's text, one line a key: a line break would
        // cut it (a checkpoint's config that no longer reads).
        guard !raw.contains(where: \.isNewline) else {
            throw ConfigError(source: source, message: "a value cannot hold a line break")
        }
        do {
            set(
                section: section, key: key, value: try Self.value(raw.trimmingCharacters(in: .whitespaces)),
                source: source)
        } catch {
            throw ConfigError(source: source, message: error.message)
        }
    }

    /// A line without its comment: '#' at the start or after whitespace, outside double quotes
    /// (where \" is a quote, not their end).
    static func stripComment(_ line: String) -> String {
        var quoted = false, escaped = false
        var previous: Character = " "
        for (offset, c) in line.enumerated() {
            if quoted && escaped {
                escaped = false
            } else if quoted && c == "\\" {
                escaped = true
            } else if c == "\"" {
                quoted.toggle()
            }
            if c == "#" && !quoted && previous.isWhitespace { return String(line.prefix(offset)) }
            previous = c
        }
        return line
    }

    /// A value as written: plain, or in double quotes (to keep spaces, a '#', a quote) where \"
    /// is a quote and \\ a backslash, as the resolved config writes them (quotedIfNeeded). A
    /// quote left open, or text after the closing one, is an error.
    static func value(_ raw: String) throws(ValueProblem) -> String {
        guard raw.hasPrefix("\"") else { return raw }
        var result = "", escaped = false
        for (offset, c) in raw.dropFirst().enumerated() {
            if escaped {
                if c != "\"" && c != "\\" { result.append("\\") }  // other backslashes are themselves (C:\data)
                result.append(c)
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else if c == "\"" {
                guard offset == raw.count - 2 else {
                    throw ValueProblem(message: "text after the closing quote: \(raw)")
                }
                return result
            } else {
                result.append(c)
            }
        }
        throw ValueProblem(message: "the quote is not closed: \(raw)")
    }
}
