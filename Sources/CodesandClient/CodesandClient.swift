import CodesandProtocol
import Foundation
import NIOCore
import NIOPosix

/// An async client for codesandd: one unix-socket connection, any number of calls in flight on it.
///
/// ```swift
/// let client = try await CodesandClient.connect()
/// let result = try await client.run(RunParams(language: "python3", code: "print(2**100)"))
/// print(result.stdout)
/// await client.close()
/// ```
///
/// Every call throws ``CodesandClientError``. A snippet that fails (non-zero exit, timeout, OOM…)
/// is not an error: its ``RunResult`` says how it ended. For the output while a snippet runs, use
/// ``runStreaming(_:timeout:)``.
///
/// When the daemon restarts, calls in flight fail with `.connectionClosed` and the next call
/// connects again by itself: one client can serve a bot for its whole life.
public final class CodesandClient: Sendable {
    public static let defaultSocketPath = "/run/codesand/codesand.sock"
    /// The longest reply line accepted by default (a `run` result with 1 MiB of output fits many times).
    public static let defaultMaxReplyBytes = 64 << 20

    public let socketPath: String
    /// Runs a task on the client's event loop, where its calls are written and their replies read.
    /// A task that prefers it (`withTaskExecutorPreference`, `addTask(executorPreference:)`) sends
    /// and resumes with its reply on that thread: no wake-up of another thread on either side of a
    /// call (tens of microseconds each on a small VM). For tasks whose work between calls is short.
    public let taskExecutor: any TaskExecutor
    private let connection: ClientConnection
    private let ids = IDGenerator()

    private init(socketPath: String, connection: ClientConnection, loop: any EventLoop) {
        self.socketPath = socketPath
        self.connection = connection
        self.taskExecutor = EventLoopTaskExecutor(loop)
    }

    /// Connects to the daemon's socket.
    /// - Parameters:
    ///   - maxReplyBytes: the longest reply line accepted; a longer one fails the pending calls
    ///     with `.protocolViolation` and closes the connection.
    public static func connect(
        socketPath: String = defaultSocketPath,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        maxReplyBytes: Int = defaultMaxReplyBytes
    ) async throws(CodesandClientError) -> CodesandClient {
        // One loop for the client's life, reconnections included: its taskExecutor stays where its calls are.
        let loop = eventLoopGroup.next()
        let connection = ClientConnection(socketPath: socketPath, loop: loop, maxReplyBytes: maxReplyBytes)
        _ = try await connection.channel()  // connect now, so that a wrong path fails here
        return CodesandClient(socketPath: socketPath, connection: connection, loop: loop)
    }

    /// Runs a snippet and returns how it ended.
    /// - Parameter timeout: how long to wait for the reply (it comes when the snippet ends, so allow
    ///   for `limits.wall_ms` plus any wait for a free sandbox). `nil` waits as long as it takes.
    public func run(_ params: RunParams, timeout: Duration? = nil) async throws(CodesandClientError) -> RunResult {
        try decode(RunResult.self, RPCMethod.run, from: await send(RPCMethod.run, params, timeout: timeout))
    }

    /// The languages the daemon can run (only installed ones).
    public func languages(timeout: Duration? = nil) async throws(CodesandClientError) -> [LanguageInfo] {
        try decode([LanguageInfo].self, RPCMethod.languages,
                   from: await send(RPCMethod.languages, JSONValue?.none, timeout: timeout))
    }

    /// Counters and pool state of the daemon.
    public func status(timeout: Duration? = nil) async throws(CodesandClientError) -> StatusResult {
        try decode(StatusResult.self, RPCMethod.status,
                   from: await send(RPCMethod.status, JSONValue?.none, timeout: timeout))
    }

    /// `pool.reload`: the daemon re-reads its config and moves its pool over, slot by slot, while it
    /// serves. A config it refuses (its old one stays) is an `.rpc` error (-32602) saying why.
    public func reloadPool(timeout: Duration? = nil) async throws(CodesandClientError) -> ReloadResult {
        try decode(ReloadResult.self, RPCMethod.poolReload,
                   from: await send(RPCMethod.poolReload, JSONValue?.none, timeout: timeout))
    }

    /// Calls any method and returns its `result` member as the exact JSON bytes the daemon sent.
    public func call(method: String, params: some Encodable, timeout: Duration? = nil) async throws(CodesandClientError) -> Data {
        Data(try await send(method, params, timeout: timeout).readableBytesView)
    }

    /// Calls any method without params and returns its `result` member as the exact JSON bytes sent.
    public func call(method: String, timeout: Duration? = nil) async throws(CodesandClientError) -> Data {
        Data(try await send(method, JSONValue?.none, timeout: timeout).readableBytesView)
    }

    /// Closes the connection for good. Calls still pending, and any made later, fail with `.connectionClosed`.
    public func close() async {
        await connection.close()
    }

    // MARK: Internals

    /// Sends one call and waits for its reply's `result`. `onOutput` gets the call's `run.output`
    /// notifications (on the event loop, in order, all before this returns).
    func send(_ method: String, _ params: (some Encodable)?, timeout: Duration?,
              onOutput: (@Sendable (OutputChunk) -> Void)? = nil) async throws(CodesandClientError) -> ByteBuffer {
        let id = ids.next()
        var line: ByteBuffer
        do {
            let json = try RPCEncoder.request(id: .int(id), method: method, params: params)
            line = ByteBufferAllocator().buffer(capacity: json.count + 1)
            line.writeBytes(json)
            line.writeInteger(UInt8(ascii: "\n"))
        } catch {
            throw .encodingFailed("\(error)")
        }
        // A call that did not reach the daemon (its connection had just closed) goes out once more
        // on a new connection; one that did reach it is never repeated.
        let channel = try await connection.channel()
        do {
            return try await send(id: id, line: line, timeout: timeout, onOutput: onOutput, on: channel)
        } catch is CallNotSent {
            await connection.discard(channel)
        } catch {
            throw error as? CodesandClientError ?? .connectionClosed
        }
        do {
            return try await send(id: id, line: line, timeout: timeout, onOutput: onOutput, on: try await connection.channel())
        } catch {
            throw error as? CodesandClientError ?? .connectionClosed
        }
    }

    /// One attempt. Throws ``CodesandClientError``, or ``CallNotSent`` when the call never left.
    private func send(id: Int64, line: ByteBuffer, timeout: Duration?, onOutput: (@Sendable (OutputChunk) -> Void)?,
                      on channel: Channel) async throws -> ByteBuffer {
        let promise = channel.eventLoop.makePromise(of: Reply.Outcome.self)
        let call = OutgoingCall(id: id, line: line, timeout: timeout.map { TimeAmount($0) }, promise: promise, onOutput: onOutput)
        let abandon: @Sendable () -> Void = { channel.pipeline.triggerUserOutboundEvent(AbandonCall(id: id, error: .cancelled), promise: nil) }

        let outcome: Reply.Outcome
        do {
            outcome = try await withTaskCancellationHandler {
                // On a channel already closed the write never reaches the multiplexer.
                channel.writeAndFlush(call).whenFailure { _ in promise.fail(CallNotSent()) }
                // Cancelled before the handler below was installed: its abandon went out before the write.
                if Task.isCancelled { abandon() }
                return try await promise.futureResult.get()
            } onCancel: {
                abandon()
            }
        } catch let error as CodesandClientError {
            throw error
        } catch let error as CallNotSent {
            throw error
        } catch {
            throw CodesandClientError.connectionClosed
        }
        switch outcome {
        case .result(let bytes): return bytes
        case .error(let error): throw CodesandClientError.rpc(error)
        }
    }

    func decode<T: Decodable>(_ type: T.Type, _ method: String, from bytes: ByteBuffer) throws(CodesandClientError) -> T {
        do {
            // A run's result through the protocol's own parser (the same value, less CPU).
            if let readable = T.self as? any JSONReadable.Type {
                return try readable.read(Array(bytes.readableBytesView)) as! T
            }
            return try JSONDecoder().decode(T.self, from: Data(bytes.readableBytesView))
        } catch {
            throw .protocolViolation("the result of \(method) does not decode as \(T.self): \(error)")
        }
    }
}

/// Request ids: 1, 2, 3… unique on a connection.
private final class IDGenerator: @unchecked Sendable {
    private let lock = NSLock()
    private var last: Int64 = 0

    func next() -> Int64 {
        lock.withLock {
            last += 1
            return last
        }
    }
}
