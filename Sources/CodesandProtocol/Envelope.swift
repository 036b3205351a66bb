import Foundation

/// A JSON-RPC request id: a string or a number, echoed back unchanged. `nil` means a notification.
public enum RPCID: Hashable, Sendable, Codable {
    case string(String)
    case int(Int64)
    case double(Double)

    init?(_ value: JSONValue) {
        switch value {
        case .string(let s): self = .string(s)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        default: return nil
        }
    }

    public init(from decoder: Decoder) throws {
        let v = try JSONValue(from: decoder)
        guard let id = RPCID(v) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "id must be a string or number"))
        }
        self = id
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        }
    }
}

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

    /// Parses one framed line (without its `\n`).
    public static func parse(_ bytes: some Collection<UInt8>) -> RPCMessage {
        let data = Data(bytes)
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            return .parseError(RPCError(.parseError, "Parse error: the message is not valid UTF-8 JSON"))
        }
        switch value {
        case .array(let items):
            if items.isEmpty {
                return .single(.invalid(id: nil, RPCError(.invalidRequest, "Invalid Request: empty batch")))
            }
            if items.count > maxBatch {
                return .single(.invalid(id: nil, RPCError(.invalidRequest, "Invalid Request: a batch holds at most \(maxBatch) requests")))
            }
            return .batch(items.map(parseOne))
        default:
            return .single(parseOne(value))
        }
    }

    static func parseOne(_ value: JSONValue) -> RPCIncoming {
        guard case .object(let obj) = value else {
            return .invalid(id: nil, RPCError(.invalidRequest, "Invalid Request: expected an object, got \(value.typeName)"))
        }
        var id: RPCID? = nil
        var hasNullID = false
        if let rawID = obj["id"] {
            if rawID == .null {
                hasNullID = true
            } else if let parsed = RPCID(rawID) {
                id = parsed
            } else {
                return .invalid(id: nil, RPCError(.invalidRequest, "Invalid Request: id must be a string or a number"))
            }
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

/// Encodes responses and requests as single lines ending in `\n`.
public enum RPCEncoder {
    struct Response<R: Encodable>: Encodable {
        let jsonrpc = "2.0"
        let id: RPCID?
        let result: R?
        let error: RPCError?
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(jsonrpc, forKey: .jsonrpc)
            if let id { try c.encode(id, forKey: .id) } else { try c.encodeNil(forKey: .id) }
            if let error { try c.encode(error, forKey: .error) } else { try c.encode(result, forKey: .result) }
        }
        enum Keys: String, CodingKey { case jsonrpc, id, result, error }
    }

    struct Request<P: Encodable>: Encodable {
        let jsonrpc = "2.0"
        let id: RPCID?
        let method: String
        let params: P?
    }

    static func makeEncoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }

    public static func result(id: RPCID?, _ result: some Encodable) throws -> Data {
        try makeEncoder().encode(Response(id: id, result: result, error: nil))
    }

    public static func error(id: RPCID?, _ error: RPCError) -> Data {
        // Encoding an RPCError cannot fail.
        (try? makeEncoder().encode(Response<JSONValue>(id: id, result: nil, error: error))) ?? Data()
    }

    public static func request(id: RPCID?, method: String, params: (some Encodable)?) throws -> Data {
        try makeEncoder().encode(Request(id: id, method: method, params: params))
    }

    struct Notification<P: Encodable>: Encodable {
        let jsonrpc = "2.0"
        let method: String
        let params: P
    }

    /// A notification from the daemon (no id), e.g. `run.output`.
    public static func notification(method: String, params: some Encodable) -> Data {
        (try? makeEncoder().encode(Notification(method: method, params: params))) ?? Data()
    }

    /// A batch reply: the given encoded responses joined into one JSON array.
    public static func batch(_ responses: [Data]) -> Data {
        var out = Data("[".utf8)
        for (i, r) in responses.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(r)
        }
        out.append(UInt8(ascii: "]"))
        return out
    }
}
