import CodesandProtocol

/// Why a call failed. A snippet's own failure (non-zero exit, timeout, OOM…) is not an error: it is
/// a successful ``RunResult``. These are failures of the request or of the connection.
public enum CodesandClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The daemon answered with a JSON-RPC error. `error.knownCode` maps the code
    /// (e.g. `.unknownLanguage`, `.busy`); `error.data` carries details such as `retry_after_ms`.
    case rpc(RPCError)
    /// The connection closed (or broke) before the reply came. Every pending call fails with this.
    case connectionClosed
    /// No reply within the call's timeout. Only that call fails; the connection stays usable and a
    /// late reply is dropped.
    case timeout
    /// The daemon sent something that is not a JSON-RPC 2.0 reply this client can read.
    case protocolViolation(String)
    /// The socket could not be connected: `reason` is the system's message (e.g. "Permission denied").
    case connectFailed(path: String, reason: String)
    /// The params could not be encoded as JSON (e.g. a non-finite Double in a custom call).
    case encodingFailed(String)
    /// The calling task was cancelled; the call's slot is freed and a late reply is dropped.
    case cancelled

    public var description: String {
        switch self {
        case .rpc(let e): return "\(e.message) (code \(e.code))"
        case .connectionClosed: return "the connection to codesandd closed before the reply came"
        case .timeout: return "no reply from codesandd within the timeout"
        case .protocolViolation(let why): return "protocol violation: \(why)"
        case .connectFailed(let path, let reason): return "cannot connect to \(path): \(reason)"
        case .encodingFailed(let why): return "cannot encode the request: \(why)"
        case .cancelled: return "the call was cancelled"
        }
    }
}
