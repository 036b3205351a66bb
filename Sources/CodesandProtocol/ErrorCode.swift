/// JSON-RPC error codes used by codesand (protocol.md, "Errors").
public enum RPCErrorCode: Int, Sendable, CaseIterable {
    case parseError = -32700
    case invalidRequest = -32600
    case methodNotFound = -32601
    case invalidParams = -32602
    case internalError = -32603
    case unknownLanguage = -32001
    case busy = -32002
    case shuttingDown = -32003
    case tooManyConnections = -32004
}

/// The `error` member of a JSON-RPC response.
public struct RPCError: Error, Codable, Hashable, Sendable {
    public var code: Int
    public var message: String
    public var data: JSONValue?

    public init(code: Int, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public init(_ code: RPCErrorCode, _ message: String, data: JSONValue? = nil) {
        self.init(code: code.rawValue, message: message, data: data)
    }

    /// The known code, or nil for a code this library does not know.
    public var knownCode: RPCErrorCode? { RPCErrorCode(rawValue: code) }

    public static func invalidParams(_ message: String) -> RPCError { RPCError(.invalidParams, message) }
}
