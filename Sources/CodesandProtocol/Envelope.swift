/// A request as received: the method and its raw params. `id == nil` is a notification.
public struct RPCRequest: Sendable {
    public var id: RPCID?
    /// True when the request carried `"id": null` (allowed, discouraged): it is answered with a null id.
    public var hasNullID: Bool
    public var method: String
    public var params: JSONValue?

    public var isNotification: Bool { id == nil && !hasNullID }
}

/// One parsed element of an incoming message: a valid request, or an error to answer with.
public enum RPCIncoming: Sendable {
    case request(RPCRequest)
    /// An invalid request; `id` is the request's id if one could be read.
    case invalid(id: RPCID?, RPCError)
}

/// A whole incoming line: one object or a batch array.
public enum RPCMessage: Sendable {
    case single(RPCIncoming)
    case batch([RPCIncoming])
    /// Not JSON at all (or not UTF-8): answered with -32700 and a null id.
    case parseError(RPCError)
}

public enum RPCParser {
    /// The most requests one batch may hold.
    public static let maxBatch = 64

    /// Parses one framed line (without its `\n`): linear in its length (JSONParser).
    public static func parse(_ bytes: some Collection<UInt8>) -> RPCMessage {
        do throws(JSONParseError) {
            return try JSONParser.withParser(Array(bytes)) { (p: inout JSONParser) throws(JSONParseError) -> RPCMessage in
                let message: RPCMessage
                if p.peek() == UInt8(ascii: "[") {
                    var items: [RPCIncoming] = []
                    try p.array(depth: 0) { (p: inout JSONParser) throws(JSONParseError) in items.append(try incoming(&p, depth: 1)) }
                    if items.isEmpty {
                        message = .single(.invalid(id: nil, RPCError(.invalidRequest, "Invalid Request: empty batch")))
                    } else if items.count > maxBatch {
                        message = .single(.invalid(id: nil, RPCError(.invalidRequest, "Invalid Request: a batch holds at most \(maxBatch) requests")))
                    } else {
                        message = .batch(items)
                    }
                } else {
                    message = .single(try incoming(&p, depth: 0))
                }
                try p.end()
                return message
            }
        } catch {
            switch error {
            case .syntax(let offset, let expected):
                return .parseError(RPCError(.parseError, "Parse error: the message is not valid UTF-8 JSON (at byte \(offset): expected \(expected))"))
            case .tooDeep:
                return .single(.invalid(id: nil, RPCError(.invalidRequest,
                    "Invalid Request: arrays and objects are nested deeper than \(JSONParser.maxDepth) levels")))
            case .duplicateKey(let key):
                return .single(.invalid(id: nil, RPCError(.invalidRequest,
                    "Invalid Request: an object has the member \(JSONText.quoted(String(key.prefix(64)))) twice")))
            }
        }
    }

    /// One request of the message. A numeric id keeps its text (RPCID.number).
    static func incoming(_ p: inout JSONParser, depth: Int) throws(JSONParseError) -> RPCIncoming {
        guard p.peek() == UInt8(ascii: "{") else {
            let value = try p.value(depth: depth)
            return .invalid(id: nil, RPCError(.invalidRequest, "Invalid Request: expected an object, got \(value.typeName)"))
        }
        var members: [String: JSONValue] = [:]
        var numericID: RPCID? = nil
        try p.object(depth: depth) { (p: inout JSONParser, key: String) throws(JSONParseError) in
            if key == "id", let c = p.peek(), c == UInt8(ascii: "-") || (0x30...0x39).contains(c) {
                let text = try p.numberText()
                numericID = RPCID(numberText: text)
                members[key] = JSONParser.number(text)
            } else {
                members[key] = try p.value(depth: depth + 1)
            }
        }
        return request(members, numericID: numericID)
    }

    static func request(_ obj: [String: JSONValue], numericID: RPCID?) -> RPCIncoming {
        var id: RPCID? = nil
        var hasNullID = false
        switch obj["id"] {
        case nil: break
        case .null?: hasNullID = true
        case .string(let s)?: id = .string(s)
        case .int?, .double?: id = numericID
        default: return .invalid(id: nil, RPCError(.invalidRequest, "Invalid Request: id must be a string or a number"))
        }
        guard obj["jsonrpc"] == .string("2.0") else {
            return .invalid(id: id, RPCError(.invalidRequest, "Invalid Request: \"jsonrpc\" must be \"2.0\""))
        }
        guard case .string(let method)? = obj["method"] else {
            return .invalid(id: id, RPCError(.invalidRequest, "Invalid Request: \"method\" must be a string"))
        }
        let params = obj["params"]
        switch params {
        case nil, .object?, .array?: break
        default:
            return .invalid(id: id, RPCError(.invalidRequest, "Invalid Request: \"params\" must be an object or an array"))
        }
        return .request(RPCRequest(id: id, hasNullID: hasNullID, method: method, params: params))
    }
}
