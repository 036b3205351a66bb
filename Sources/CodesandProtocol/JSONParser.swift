/// Why bytes are not a JSON text the daemon accepts.
public enum JSONParseError: Error, Equatable, Sendable {
    /// Not JSON (RFC 8259), or not UTF-8: at byte `offset`, `expected` was expected.
    case syntax(offset: Int, expected: String)
    /// Arrays and objects nested deeper than `JSONParser.maxDepth`.
    case tooDeep
    /// An object names the same member twice (RFC 8259 leaves the meaning open; we refuse it).
    case duplicateKey(String)
}

/// A strict RFC 8259 parser over UTF-8 bytes. Its work is linear in the input: every byte is
/// looked at a bounded number of times, nothing is tried and undone, and nesting is bounded, so a
/// hostile line of a MiB costs milliseconds, not minutes.
///
/// Use it inside `JSONParser.withParser`: it reads the caller's bytes in place.
public struct JSONParser {
    /// The deepest nesting of arrays and objects accepted (protocol.md, "Messages").
    public static let maxDepth = 64

    private let bytes: UnsafeBufferPointer<UInt8>
    private(set) var offset = 0

    private init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// Runs `body` with a parser over `bytes`.
    public static func withParser<R>(_ bytes: [UInt8], _ body: (inout JSONParser) throws(JSONParseError) -> R) throws(JSONParseError) -> R {
        let result: Result<R, JSONParseError> = bytes.withUnsafeBufferPointer { buffer in
            var parser = JSONParser(buffer)
            do throws(JSONParseError) { return .success(try body(&parser)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// One whole JSON text: a value with nothing but whitespace around it.
    public static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
        try withParser(bytes) { (p: inout JSONParser) throws(JSONParseError) in
            let value = try p.value(depth: 0)
            try p.end()
            return value
        }
    }

    // MARK: Building blocks (the request envelope reads its members with these)

    /// The next byte after whitespace, not consumed; nil at the end.
    public mutating func peek() -> UInt8? {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x09, 0x0A, 0x0D: offset += 1
            case let b: return b
            }
        }
        return nil
    }

    /// Only whitespace is left.
    public mutating func end() throws(JSONParseError) {
        if peek() != nil { throw fail("the end of the message") }
    }

    func fail(_ expected: String) -> JSONParseError { .syntax(offset: offset, expected: expected) }

    /// Any value; `depth` is the number of arrays and objects around it.
    public mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
        switch peek() {
        case UInt8(ascii: "{")?:
            var members: [String: JSONValue] = [:]
            try object(depth: depth) { (p: inout JSONParser, key: String) throws(JSONParseError) in
                members[key] = try p.value(depth: depth + 1)
            }
            return .object(members)
        case UInt8(ascii: "[")?:
            var items: [JSONValue] = []
            try array(depth: depth) { (p: inout JSONParser) throws(JSONParseError) in items.append(try p.value(depth: depth + 1)) }
            return .array(items)
        case UInt8(ascii: "\"")?: return .string(try string())
        case UInt8(ascii: "t")?: try literal("true"); return .bool(true)
        case UInt8(ascii: "f")?: try literal("false"); return .bool(false)
        case UInt8(ascii: "n")?: try literal("null"); return .null
        default: return Self.number(try numberText())
        }
    }

    /// An object whose members `member` reads (it must read the value). Refuses a repeated key.
    public mutating func object(depth: Int, _ member: (inout JSONParser, String) throws(JSONParseError) -> Void) throws(JSONParseError) {
        guard depth < Self.maxDepth else { throw .tooDeep }
        offset += 1  // "{"
        var seen = Set<String>()
        if peek() == UInt8(ascii: "}") { offset += 1; return }
        while true {
            guard peek() == UInt8(ascii: "\"") else { throw fail("a member name (a string)") }
            let key = try string()
            guard seen.insert(key).inserted else { throw .duplicateKey(key) }
            guard peek() == UInt8(ascii: ":") else { throw fail("\":\"") }
            offset += 1
            try member(&self, key)
            switch peek() {
            case UInt8(ascii: ",")?: offset += 1
            case UInt8(ascii: "}")?: offset += 1; return
            default: throw fail("\",\" or \"}\"")
            }
        }
    }

    /// An array whose elements `element` reads.
    public mutating func array(depth: Int, _ element: (inout JSONParser) throws(JSONParseError) -> Void) throws(JSONParseError) {
        guard depth < Self.maxDepth else { throw .tooDeep }
        offset += 1  // "["
        if peek() == UInt8(ascii: "]") { offset += 1; return }
        while true {
            try element(&self)
            switch peek() {
            case UInt8(ascii: ",")?: offset += 1
            case UInt8(ascii: "]")?: offset += 1; return
            default: throw fail("\",\" or \"]\"")
            }
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONParseError) {
        let w = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard bytes.count - offset >= w.count, bytes[offset..<offset + w.count].elementsEqual(w) else { throw fail("a value") }
        offset += w.count
    }

    /// A number's text, checked against the grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    public mutating func numberText() throws(JSONParseError) -> String {
        _ = peek()
        let start = offset
        func digits(_ p: inout JSONParser) -> Int {
            let s = p.offset
            while p.offset < p.bytes.count, (0x30...0x39).contains(p.bytes[p.offset]) { p.offset += 1 }
            return p.offset - s
        }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "-") { offset += 1 }
        guard offset < bytes.count, (0x30...0x39).contains(bytes[offset]) else { throw fail("a value") }
        if bytes[offset] == UInt8(ascii: "0") { offset += 1 } else { _ = digits(&self) }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: ".") {
            offset += 1
            guard digits(&self) > 0 else { throw fail("a digit after \".\"") }
        }
        if offset < bytes.count, bytes[offset] | 0x20 == UInt8(ascii: "e") {
            offset += 1
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "+") || bytes[offset] == UInt8(ascii: "-") { offset += 1 }
            guard digits(&self) > 0 else { throw fail("a digit in the exponent") }
        }
        return String(decoding: bytes[start..<offset], as: UTF8.self)
    }

    /// A number's value: a 64-bit integer when it is one, else the nearest double.
    static func number(_ text: String) -> JSONValue {
        if let i = Int64(text) { return .int(i) }
        return .double(Double(text) ?? .nan)  // the grammar was checked: Double parses it (±inf when out of range)
    }

    /// A string (the parser is at its opening quote). Escapes are decoded; the raw bytes must be
    /// UTF-8 with no control characters; `\u` escapes must pair their surrogates.
    public mutating func string() throws(JSONParseError) -> String {
        offset += 1  // opening quote
        var out: [UInt8] = []
        var runStart = offset
        while true {
            guard offset < bytes.count else { throw fail("the end of the string (\")") }
            let b = bytes[offset]
            if b == UInt8(ascii: "\"") { break }
            if b < 0x20 { throw fail("an escaped control character (raw byte \(b) in a string)") }
            guard b == UInt8(ascii: "\\") else { offset += 1; continue }
            out.append(contentsOf: bytes[runStart..<offset])
            offset += 1
            try escape(into: &out)
            runStart = offset
        }
        let end = offset
        offset += 1  // closing quote
        let text: String?
        if out.isEmpty {
            text = String(validating: bytes[runStart..<end], as: UTF8.self)
        } else {
            out.append(contentsOf: bytes[runStart..<end])
            text = String(validating: out, as: UTF8.self)
        }
        guard let text else { throw .syntax(offset: runStart, expected: "UTF-8 text in a string") }
        return text
    }

    /// One escape after its backslash, appended as UTF-8.
    private mutating func escape(into out: inout [UInt8]) throws(JSONParseError) {
        guard offset < bytes.count else { throw fail("an escape") }
        let c = bytes[offset]
        offset += 1
        switch c {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(c)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try hex4()
            if (0xD800...0xDBFF).contains(scalar) {
                guard bytes.count - offset >= 6, bytes[offset] == UInt8(ascii: "\\"), bytes[offset + 1] == UInt8(ascii: "u") else {
                    throw fail("the low half of a surrogate pair (\\uDC00-\\uDFFF)")
                }
                offset += 2
                let low = try hex4()
                guard (0xDC00...0xDFFF).contains(low) else { throw fail("the low half of a surrogate pair (\\uDC00-\\uDFFF)") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(scalar) {
                throw fail("a character, not the low half of a surrogate pair alone")
            }
            UTF8.encode(Unicode.Scalar(scalar)!) { out.append($0) }
        default:
            offset -= 1
            throw fail("an escape (one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)")
        }
    }

    private mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard bytes.count - offset >= 4 else { throw fail("four hex digits") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[offset]
            let d: UInt8
            switch b {
            case 0x30...0x39: d = b - 0x30
            case 0x41...0x46: d = b - 0x41 + 10
            case 0x61...0x66: d = b - 0x61 + 10
            default: throw fail("four hex digits")
            }
            v = v << 4 | UInt32(d)
            offset += 1
        }
        return v
    }
}
