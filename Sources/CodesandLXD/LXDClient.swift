import CodesandProtocol
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// LXD's REST API, spoken by codesand itself: HTTP/1.1 on LXD's unix socket or over TLS to a
/// remote LXD (LXDTransport), one connection per request (a unix connect costs microseconds, and
/// no request waits behind another's `/wait`). Every request carries a `Host` header: LXD answers
/// 400 without one.
public final class LXDClient: Sendable {
    /// The unix socket (`/var/lib/lxd/unix.socket`, or `$LXD_DIR/unix.socket`) or `https://HOST:PORT`.
    public let transport: LXDTransport
    /// The LXD project the pool's instances live in ("default": no `project=` query).
    public let project: String
    let group: any EventLoopGroup
    /// The largest response body read (an instance list of a big cluster is well below it).
    static let maxBodyBytes = 64 << 20

    public convenience init(socketPath: String, project: String = "default",
                            group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.init(transport: .unix(socketPath), project: project, group: group)
    }

    public init(transport: LXDTransport, project: String = "default",
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.transport = transport
        self.project = project
        self.group = group
    }

    /// One HTTP exchange: the response's status and body. `path` is absolute ("/1.0/…"), with its
    /// query if any; the project is added here.
    public func send(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil,
                     headers extra: [(String, String)] = [], timeout: Duration = .seconds(120)) async throws -> (status: Int, body: [UInt8]) {
        let uri = LXDPath.withProject(path, project)
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "lxd")
        headers.add(name: "Connection", value: "close")
        headers.add(name: "Content-Length", value: "\(body?.count ?? 0)")
        if body != nil && !extra.contains(where: { $0.0.lowercased() == "content-type" }) {
            headers.add(name: "Content-Type", value: "application/json")
        }
        for (name, value) in extra { headers.add(name: name, value: value) }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers)
        return try await withDeadline(timeout, what: "\(method) \(uri)") { [self] in
            let channel = try await connect()
            return try await channel.executeThenClose { inbound, outbound in
                // One write: LXD may answer and close as soon as it has the head (a GET), and a separate
                // write of the (empty) end would then fail with "I/O on closed channel".
                var parts: [HTTPClientRequestPart] = [.head(head)]
                if let body, !body.isEmpty { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                parts.append(.end(nil))
                try await outbound.write(contentsOf: parts)
                var status: Int?
                var received = ByteBuffer()
                for try await part in inbound {
                    switch part {
                    case .head(let h):
                        status = Int(h.status.code)
                    case .body(var b):
                        guard received.readableBytes + b.readableBytes <= Self.maxBodyBytes else {
                            throw LXDError(what: "\(method) \(uri)", message: "response body over \(Self.maxBodyBytes) bytes")
                        }
                        received.writeBuffer(&b)
                    case .end:
                        guard let status else { break }
                        return (status, Array(buffer: received))
                    }
                }
                throw LXDError(what: "\(method) \(uri)", message: "LXD closed the connection before its response ended")
            }
        }
    }

    /// A request whose answer is LXD's JSON envelope: its `metadata` for a sync response, the
    /// operation for an async one. An error response throws with LXD's own message.
    public func call(_ method: HTTPMethod, _ path: String, json: JSONValue? = nil,
                     timeout: Duration = .seconds(120)) async throws -> LXDResponse {
        let body = try json.map { Array(try JSONEncoder().encode($0)) }
        let (status, bytes) = try await send(method, path, body: body, timeout: timeout)
        return try LXDResponse.parse(status: status, body: bytes, what: "\(method) \(path)")
    }

    /// Starts an async request and waits for its operation to end: its metadata on success, LXD's
    /// error (e.g. "Image not found") thrown on failure.
    @discardableResult
    public func run(_ method: HTTPMethod, _ path: String, json: JSONValue? = nil,
                    timeout: Duration = .seconds(300)) async throws -> JSONValue {
        let response = try await call(method, path, json: json)
        guard let op = response.operation else { return response.metadata }
        let result = try await wait(op, timeout: timeout)
        guard result.succeeded else {
            throw LXDError(what: "\(method) \(path)", message: result.error.isEmpty ? "operation failed (status \(result.statusCode))" : result.error)
        }
        return result.metadata
    }

    /// Waits for an operation (`GET <op>/wait`); a failed one is returned, not thrown (a failed exec
    /// still has its `return`). Call it at once: LXD
    /// forgets a finished operation after a few seconds.
    public func wait(_ operation: String, timeout: Duration) async throws -> LXDOperationResult {
        let seconds = max(1, timeout.components.seconds)
        let response = try await call(.GET, LXDPath.sub(operation, "wait", query: "timeout=\(seconds)"),
                                      timeout: timeout + .seconds(10))
        let result = LXDOperationResult(response.metadata)
        if result.statusCode == 103 {  // still running when LXD's own wait timed out
            throw LXDError(what: "operation \(operation)", message: "not done after \(seconds) s")
        }
        return result
    }

    func connect() async throws -> NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart> {
        try await transport.connect(group: group) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
            }
        }
    }

    /// Asks LXD whether it trusts us (`GET /1.0`: `auth` is "trusted" or "untrusted"): a daemon
    /// starting with a client certificate LXD does not know says so at once, not at its first run.
    public func checkTrusted() async throws {
        let meta = try await call(.GET, "/1.0", timeout: .seconds(30)).metadata.objectValue ?? [:]
        guard meta["auth"]?.stringValue == "trusted" else {
            throw LXDError(what: "lxd.client_cert", message: "LXD at \(transport.address) does not trust the client certificate "
                           + "(SHA-256 \(transport.clientFingerprint); auth \"\(meta["auth"]?.stringValue ?? "?")\"): on the LXD host, "
                           + "lxc config trust add CERT (the file lxd.client_cert names)")
        }
    }
}

/// LXD's answer to a request: its metadata, and the operation's path for an async one.
public struct LXDResponse: Sendable {
    public var status: Int
    public var metadata: JSONValue
    public var operation: String?

    static func parse(status: Int, body: [UInt8], what: String) throws -> LXDResponse {
        guard let json = try? JSONParser.parse(body), case .object(let o) = json else {
            throw LXDError(what: what, status: status, message: "not a JSON answer: \(String(decoding: body.prefix(200), as: UTF8.self))")
        }
        if o["type"]?.stringValue == "error" || status >= 400 {
            throw LXDError(what: what, status: status, message: o["error"]?.stringValue ?? "HTTP \(status)")
        }
        let op = o["operation"]?.stringValue
        return LXDResponse(status: status, metadata: o["metadata"] ?? .null, operation: op?.isEmpty == false ? op : nil)
    }
}

/// A finished operation, as `/wait` reports it.
public struct LXDOperationResult: Sendable {
    public var statusCode: Int64
    public var error: String
    public var metadata: JSONValue

    init(_ op: JSONValue) {
        let o = op.objectValue ?? [:]
        if case .int(let c) = o["status_code"] { statusCode = c } else { statusCode = 0 }
        error = o["err"]?.stringValue ?? ""
        metadata = o["metadata"] ?? .null
    }

    public var succeeded: Bool { statusCode == 200 }
}

/// LXD said no, or could not be reached: what was asked and LXD's own words.
public struct LXDError: Error, CustomStringConvertible, Sendable {
    public var what: String
    public var status: Int?
    public var message: String
    public init(what: String, status: Int? = nil, message: String) {
        self.what = what
        self.status = status
        self.message = message
    }
    public var description: String { "LXD: \(what): \(message)" + (status.map { " (HTTP \($0))" } ?? "") }
    public var isNotFound: Bool { status == 404 }
}

/// Runs `body`, failing with an LXDError if it takes longer than `timeout` (the body is cancelled).
func withDeadline<T: Sendable>(_ timeout: Duration, what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw LXDError(what: what, message: "no answer within \(timeout)")
        }
        return value
    }
}
