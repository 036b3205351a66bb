/// A JSON-RPC request id: a string or a number, echoed back exactly as the client wrote it.
/// `nil` (where an `RPCID?` is used) means a notification.
public enum RPCID: Hashable, Sendable, Codable {
    case string(String)
    /// An integer written in its plain form that fits 64 bits.
    case int(Int64)
    /// Any other number (past 64 bits, with a fraction or an exponent, `-0`): its text is kept, so
    /// the reply carries the same digits (`12345678901234567890` must not come back as `1.2e+19`).
    case number(JSONNumber)

    /// The id of a number token as the parser read it.
    init(numberText text: String) {
        if let i = Int64(text), String(i) == text {
            self = .int(i)
        } else {
            self = .number(JSONNumber(checked: text))
        }
    }

    /// The id as JSON text, for the reply envelope.
    public var json: String {
        switch self {
        case .string(let s): return JSONText.quoted(s)
        case .int(let i): return String(i)
        case .number(let n): return n.text
        }
    }

    /// Through a `Decoder` (the client's replies) the number's text is not visible: an integer that
    /// fits 64 bits stays one, any other number keeps the double's shortest text.
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int64.self) {
            self = .int(i)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let d = try? c.decode(Double.self), let n = JSONNumber("\(d)") {
            self = .number(n)
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "id must be a string or a number")
        }
    }

    /// Through an `Encoder` a number other than an Int64 can only be written as a double; the
    /// daemon's replies do not go this way (RPCEncoder writes `json`).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .int(let i): try c.encode(i)
        case .number(let n): try c.encode(Double(n.text) ?? 0)
        }
    }
}

/// The text of a JSON number, checked against the grammar (so it can be written into a reply as is).
public struct JSONNumber: Hashable, Sendable {
    public let text: String

    /// nil unless `text` is exactly one JSON number.
    public init?(_ text: String) {
        let whole = try? JSONParser.withParser(Array(text.utf8)) { (p: inout JSONParser) throws(JSONParseError) -> Bool in
            guard p.peek() == text.utf8.first else { return false }  // no leading whitespace
            let read = try p.numberText()
            return read.utf8.count == text.utf8.count
        }
        guard whole == true else { return nil }
        self.text = text
    }

    /// Text the parser has already read as a number.
    init(checked text: String) {
        self.text = text
    }
}
