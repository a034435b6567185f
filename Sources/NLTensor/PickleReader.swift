import Foundation

/// Runs the opcodes of a Python pickle (protocols 0 to 5) into a `PickleValue` and calls nothing.
/// A pickle rebuilds objects by naming Python functions and classes for the loader to call, which
/// is how a downloaded checkpoint runs code in Python; here every name goes through
/// `PickleGlobals`, which knows what the few a weights file needs would return and refuses the
/// rest by name. Written by hand because no library in the project's dependencies reads pickles.
struct PickleReader {
    let data: Data
    let path: String
    var position: Int
    var stack: [PickleValue] = []
    var marks: [Int] = []
    var memo: [Int: PickleValue] = [:]
    let globals: PickleGlobals
    /// Turns a persistent id (PyTorch's storages) into a value; nil: the pickle may not have any.
    let persistentLoad: ((PickleValue) throws -> PickleValue)?

    /// Reads the pickle that starts at `offset` of `data`; returns its value and the offset just
    /// after its STOP (torch.save's older format writes several pickles one after another).
    static func read(
        _ data: Data, at offset: Int = 0, path: String,
        persistentLoad: ((PickleValue) throws -> PickleValue)? = nil
    ) throws -> (value: PickleValue, end: Int) {
        var reader = PickleReader(
            data: data, path: path, position: offset, globals: PickleGlobals(path: path), persistentLoad: persistentLoad
        )
        let value = try reader.run()
        return (value, reader.position)
    }

    func fail(_ problem: String, at offset: Int? = nil) -> SafeTensorsError {
        SafeTensorsError(path: path, problem: "\(problem) (pickle byte \(offset ?? position))")
    }

    // MARK: Reading bytes

    mutating func bytes(_ count: Int) throws -> Data {
        guard count >= 0, count <= data.count - position else {
            throw fail(
                "the file ends inside the pickle (truncated?): \(count) bytes wanted, \(data.count - position) left")
        }
        defer { position += count }
        return data[(data.startIndex + position)..<(data.startIndex + position + count)]
    }

    mutating func byte() throws -> Int { Int(try bytes(1).first!) }

    /// An unsigned little-endian integer of `size` bytes.
    mutating func unsigned(_ size: Int) throws -> Int {
        let raw = try bytes(size)
        let value = raw.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard value <= UInt64(Int.max) else { throw fail("a length of \(value) bytes") }
        return Int(value)
    }

    /// A text line, as protocol 0's opcodes give their arguments.
    mutating func line() throws -> String {
        let start = data.startIndex + position
        guard let end = data[start...].firstIndex(of: 0x0A) else { throw fail("the file ends inside a text argument") }
        position = end - data.startIndex + 1
        return String(decoding: data[start..<end], as: UTF8.self)
    }

    // MARK: The stack

    mutating func push(_ value: PickleValue) { stack.append(value) }

    mutating func pop() throws -> PickleValue {
        guard let value = stack.popLast(), stack.count >= (marks.last ?? 0) else {
            throw fail("an opcode takes a value from an empty stack (damaged?)")
        }
        return value
    }

    func top() throws -> PickleValue {
        guard let value = stack.last else { throw fail("an opcode needs a value and the stack is empty (damaged?)") }
        return value
    }

    /// The values pushed since the last MARK, which is removed.
    mutating func popMark() throws -> [PickleValue] {
        guard let mark = marks.popLast() else { throw fail("an opcode needs a MARK and there is none (damaged?)") }
        defer { stack.removeSubrange(mark...) }
        return Array(stack[mark...])
    }

    func pairs(_ items: [PickleValue]) throws -> [(key: PickleValue, value: PickleValue)] {
        guard items.count % 2 == 0 else { throw fail("a dict is given an odd number of keys and values") }
        return stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) }
    }

    mutating func memoGet(_ index: Int) throws {
        guard let value = memo[index] else { throw fail("the pickle refers to memo entry \(index), never stored") }
        push(value)
    }

    func text(_ raw: Data, what: String) throws -> PickleValue {
        guard let s = String(data: raw, encoding: .utf8) else { throw fail("a \(what) that is not UTF-8") }
        return .string(s)
    }

    // MARK: Running

    mutating func run() throws -> PickleValue {
        while true {
            let opcodeAt = position
            let opcode = try byte()
            switch opcode {
            case 0x80: _ = try byte()  // PROTO
            case 0x95: _ = try bytes(8)  // FRAME: a length hint
            case 0x2E:  // STOP
                return try pop()
            case 0x28: marks.append(stack.count)  // MARK
            case 0x30: _ = try pop()  // POP
            case 0x31: _ = try popMark()  // POP_MARK
            case 0x32: push(try top())  // DUP

            // Numbers
            case 0x4A: push(.int(Int(Int32(truncatingIfNeeded: try unsigned(4)))))  // BININT
            case 0x4B: push(.int(try byte()))  // BININT1
            case 0x4D: push(.int(try unsigned(2)))  // BININT2
            case 0x8A: push(Self.long(try bytes(try byte())))  // LONG1
            case 0x8B: push(Self.long(try bytes(try unsigned(4))))  // LONG4
            case 0x49:  // INT (protocol 0; "01" and "00" are True and False)
                let t = try line()
                if t == "01" || t == "00" {
                    push(.bool(t == "01"))
                } else {
                    guard let i = Int(t) else { throw fail("INT '\(t)' is not a number", at: opcodeAt) }
                    push(.int(i))
                }
            case 0x4C:  // LONG (protocol 0)
                let t = try line()
                guard let i = Int(t.hasSuffix("L") ? String(t.dropLast()) : t) else {
                    throw fail("LONG '\(t)' is not a 64-bit number", at: opcodeAt)
                }
                push(.int(i))
            case 0x46:  // FLOAT (protocol 0)
                let t = try line()
                guard let f = Double(t) else { throw fail("FLOAT '\(t)' is not a number", at: opcodeAt) }
                push(.float(f))
            case 0x47:  // BINFLOAT: big-endian
                push(.float(Double(bitPattern: try bytes(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) })))
            case 0x4E: push(.none)
            case 0x88: push(.bool(true))
            case 0x89: push(.bool(false))

            // Text and bytes
            case 0x54: push(.legacyString(try bytes(try unsigned(4))))  // BINSTRING
            case 0x55: push(.legacyString(try bytes(try byte())))  // SHORT_BINSTRING
            case 0x53: push(.legacyString(try Self.unquoted(try line(), reader: self)))  // STRING
            case 0x56: push(.string(Self.rawUnicodeEscape(try line())))  // UNICODE
            case 0x58: push(try text(try bytes(try unsigned(4)), what: "string"))  // BINUNICODE
            case 0x8C: push(try text(try bytes(try byte()), what: "string"))  // SHORT_BINUNICODE
            case 0x8D: push(try text(try bytes(try unsigned(8)), what: "string"))  // BINUNICODE8
            case 0x42: push(.bytes(try bytes(try unsigned(4))))  // BINBYTES
            case 0x43: push(.bytes(try bytes(try byte())))  // SHORT_BINBYTES
            case 0x8E, 0x96: push(.bytes(try bytes(try unsigned(8))))  // BINBYTES8, BYTEARRAY8

            // Containers
            case 0x5D: push(.list(PickleList()))  // EMPTY_LIST
            case 0x6C: push(.list(PickleList(try popMark())))  // LIST
            case 0x61:  // APPEND
                let item = try pop()
                try list(try top(), opcodeAt).items.append(item)
            case 0x65:  // APPENDS
                let items = try popMark()
                try list(try top(), opcodeAt).items += items
            case 0x29: push(.tuple([]))  // EMPTY_TUPLE
            case 0x74: push(.tuple(try popMark()))  // TUPLE
            case 0x85, 0x86, 0x87:  // TUPLE1, TUPLE2, TUPLE3
                let n = Int(opcode) - 0x84
                guard stack.count - n >= (marks.last ?? 0) else { throw fail("TUPLE\(n) on too short a stack") }
                let items = Array(stack.suffix(n))
                stack.removeLast(n)
                push(.tuple(items))
            case 0x7D: push(.dict(PickleDict()))  // EMPTY_DICT
            case 0x64: push(.dict(PickleDict(try pairs(try popMark()))))  // DICT
            case 0x73:  // SETITEM
                let value = try pop(), key = try pop()
                try dict(try top(), opcodeAt).entries.append((key, value))
            case 0x75:  // SETITEMS
                let items = try pairs(try popMark())
                try dict(try top(), opcodeAt).entries += items
            case 0x8F: push(.list(PickleList()))  // EMPTY_SET: kept as a list of its items
            case 0x90:  // ADDITEMS
                let items = try popMark()
                try list(try top(), opcodeAt).items += items
            case 0x91: push(.tuple(try popMark()))  // FROZENSET

            // The memo
            case 0x70: memo[try memoIndex(try line(), opcodeAt)] = try top()  // PUT
            case 0x71: memo[try byte()] = try top()  // BINPUT
            case 0x72: memo[try unsigned(4)] = try top()  // LONG_BINPUT
            case 0x94: memo[memo.count] = try top()  // MEMOIZE
            case 0x67: try memoGet(try memoIndex(try line(), opcodeAt))  // GET
            case 0x68: try memoGet(try byte())  // BINGET
            case 0x6A: try memoGet(try unsigned(4))  // LONG_BINGET

            // Names, calls and objects: PickleGlobals decides, nothing is run
            case 0x63:  // GLOBAL
                let module = try line(), name = try line()
                push(try globals.resolve(module: module, name: name, at: opcodeAt))
            case 0x93:  // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard let m = module.text, let n = name.text else { throw fail("STACK_GLOBAL of non-strings") }
                push(try globals.resolve(module: m, name: n, at: opcodeAt))
            case 0x52:  // REDUCE
                let arguments = try pop(), callable = try pop()
                push(try globals.call(callable, arguments.elements ?? [arguments], at: opcodeAt))
            case 0x81:  // NEWOBJ
                let arguments = try pop(), type = try pop()
                push(try globals.instantiate(type, arguments.elements ?? [], at: opcodeAt))
            case 0x92:  // NEWOBJ_EX
                let keywords = try pop(), arguments = try pop(), type = try pop()
                guard keywords.entries?.isEmpty ?? true else { throw fail("NEWOBJ_EX with keyword arguments") }
                push(try globals.instantiate(type, arguments.elements ?? [], at: opcodeAt))
            case 0x69:  // INST (protocol 0)
                let module = try line(), name = try line()
                let type = try globals.resolve(module: module, name: name, at: opcodeAt)
                push(try globals.instantiate(type, try popMark(), at: opcodeAt))
            case 0x6F:  // OBJ (protocol 1)
                let items = try popMark()
                guard let type = items.first else { throw fail("OBJ without a class") }
                push(try globals.instantiate(type, Array(items.dropFirst()), at: opcodeAt))
            case 0x62:  // BUILD
                let state = try pop()
                try globals.build(try top(), state: state, at: opcodeAt)
            case 0x50, 0x51:  // PERSID, BINPERSID
                let id: PickleValue = opcode == 0x50 ? .string(try line()) : try pop()
                guard let persistentLoad else { throw fail("a persistent id, which this kind of file never has") }
                push(try persistentLoad(id))
            case 0x82, 0x83, 0x84:
                throw fail("an EXT opcode (Python's extension registry), which weights files never use", at: opcodeAt)
            case 0x97, 0x98:
                throw fail("an out-of-band buffer, which a file cannot carry", at: opcodeAt)
            default:
                throw fail(
                    String(format: "unknown opcode 0x%02X: not a pickle, or a damaged one", opcode), at: opcodeAt)
            }
        }
    }

    func list(_ value: PickleValue, _ at: Int) throws -> PickleList {
        guard case .list(let list) = value else { throw fail("appending to something not a list", at: at) }
        return list
    }

    func dict(_ value: PickleValue, _ at: Int) throws -> PickleDict {
        guard case .dict(let dict) = value else { throw fail("setting an item of something not a dict", at: at) }
        return dict
    }

    func memoIndex(_ text: String, _ at: Int) throws -> Int {
        guard let i = Int(text), i >= 0 else { throw fail("memo index '\(text)'", at: at) }
        return i
    }

    /// A little-endian two's complement integer of any length.
    static func long(_ raw: Data) -> PickleValue {
        guard raw.count <= 8 else { return .bigInt(Array(raw)) }
        guard let last = raw.last else { return .int(0) }
        let fill: UInt8 = last & 0x80 != 0 ? 0xFF : 0  // sign extension
        let bytes = Array(raw) + [UInt8](repeating: fill, count: 8 - raw.count)
        return .int(Int(bitPattern: UInt(bytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })))
    }

    /// The bytes of protocol 0's STRING argument, a Python 2 repr: 'text' or "text" with escapes.
    static func unquoted(_ text: String, reader: PickleReader) throws -> Data {
        let s = Array(text.utf8)
        guard s.count >= 2, s.first == s.last, s.first == UInt8(ascii: "'") || s.first == UInt8(ascii: "\"") else {
            throw reader.fail("STRING argument \(text.prefix(40)) is not quoted")
        }
        var out = [UInt8](), i = 1
        while i < s.count - 1 {
            guard s[i] == UInt8(ascii: "\\"), i + 1 < s.count - 1 else {
                out.append(s[i])
                i += 1
                continue
            }
            let e = s[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "x") where i + 1 < s.count - 1:
                guard let v = UInt8(String(decoding: s[i...(i + 1)], as: UTF8.self), radix: 16) else {
                    throw reader.fail("STRING argument has a bad \\x escape")
                }
                out.append(v)
                i += 2
            default: out.append(e)  // \\, \', \"
            }
        }
        return Data(out)
    }

    /// Protocol 0's UNICODE argument: \uXXXX and \UXXXXXXXX escapes, other bytes as Latin-1.
    static func rawUnicodeEscape(_ text: String) -> String {
        var out = "", scalars = Array(text.unicodeScalars)[...]
        while let c = scalars.popFirst() {
            if c == "\\", let kind = scalars.first, kind == "u" || kind == "U" {
                let width = kind == "u" ? 4 : 8
                let digits = String(String.UnicodeScalarView(scalars.dropFirst().prefix(width)))
                if digits.count == width, let v = UInt32(digits, radix: 16), let scalar = Unicode.Scalar(v) {
                    out.unicodeScalars.append(scalar)
                    scalars = scalars.dropFirst(1 + width)
                    continue
                }
            }
            out.unicodeScalars.append(c)
        }
        return out
    }
}
