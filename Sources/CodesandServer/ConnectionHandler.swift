import CodesandCore
import CodesandProtocol
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// One client connection: each line is dispatched concurrently, replies are written as they are
/// ready (any order, matched by id). When the client goes away its runs are cancelled, which kills
/// their sandboxes.
final class ConnectionHandler: ChannelInboundHandler, @unchecked Sendable {  // state is event-loop confined or locked
    typealias InboundIn = LineFrame
    typealias OutboundOut = ByteBuffer

    private let dispatcher: Dispatcher
    private let tracker: RequestTracker
    private let logger: Logger
    private var peer = PeerInfo(pid: 0, uid: UInt32.max, gid: UInt32.max)
    /// This connection's requests in flight (ids in the tracker).
    private let mine = NIOLockedValueBox(Set<UInt64>())
    /// The client shut down its sending side: close once every reply is written.
    private let inputClosed = NIOLockedValueBox(false)
    /// Requests in flight on one connection before the daemon stops reading it (backpressure: a
    /// client cannot make the daemon hold unbounded work or replies it does not read).
    static let maxInFlight = 64

    init(dispatcher: Dispatcher, tracker: RequestTracker, logger: Logger) {
        self.dispatcher = dispatcher
        self.tracker = tracker
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        if let provider = context.channel as? SocketOptionProvider {
            let cred: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
                level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
            cred.whenSuccess { [self] c in peer = PeerInfo(pid: c.pid, uid: c.uid, gid: c.gid) }
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .tooLong:
            let e = RPCError(.invalidRequest, "Invalid Request: the message is longer than the maximum of this daemon")
            var buffer = context.channel.allocator.buffer(bytes: RPCEncoder.error(id: nil, e))
            buffer.writeInteger(UInt8(ascii: "\n"))
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { [channel = context.channel] _ in
                channel.close(promise: nil)
            }
        case .line(let line):
            let bytes = Array(line.readableBytesView)
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }  // blank line: keep-alive, ignored
            let channel = context.channel
            let peer = self.peer
            // Registered even while stopping: the dispatcher then answers -32003 with the request's id.
            tracker.begin { [dispatcher, tracker, mine] id in
                mine.withLockedValue { _ = $0.insert(id) }
                return Task {
                    defer {
                        mine.withLockedValue { _ = $0.remove(id) }
                        tracker.end(id)
                    }
                    let reply = await dispatcher.handle(line: bytes, peer: peer) { note in self.write(note, to: channel) }
                    mine.withLockedValue { _ = $0.remove(id) }
                    self.write(reply, to: channel)
                    channel.eventLoop.execute { self.updateReading(channel) }
                }
            }
            updateReading(channel)
        }
    }

    /// Reads more requests only while this connection has room for them and its client reads replies.
    private func updateReading(_ channel: Channel) {
        let room = mine.withLockedValue { $0.count } < Self.maxInFlight
        channel.setOption(ChannelOptions.autoRead, value: room && channel.isWritable).whenComplete { _ in }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        updateReading(context.channel)
        context.fireChannelWritabilityChanged()
    }

    /// Writes a reply (nil: nothing, for notifications); closes after the last one once the client's input ended.
    private func write(_ reply: Data?, to channel: Channel) {
        let closeAfter: @Sendable () -> Void = { [mine, inputClosed] in
            if inputClosed.withLockedValue({ $0 }) && mine.withLockedValue({ $0.isEmpty }) { channel.close(promise: nil) }
        }
        guard let reply else { return channel.eventLoop.execute(closeAfter) }
        var buffer = channel.allocator.buffer(capacity: reply.count + 1)
        buffer.writeBytes(reply)
        buffer.writeInteger(UInt8(ascii: "\n"))
        channel.writeAndFlush(buffer).whenComplete { _ in closeAfter() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            inputClosed.withLockedValue { $0 = true }
            if mine.withLockedValue({ $0.isEmpty }) { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The client is gone: nobody can read these results; stop the runs and free their sandboxes.
        let running = mine.withLockedValue { $0 }
        if !running.isEmpty {
            logger.info("client disconnected with requests in flight; cancelling", metadata: [
                "peer_uid": "\(peer.uid)", "peer_pid": "\(peer.pid)", "requests": "\(running.count)"])
        }
        tracker.cancel(running)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}

/// struct ucred, as SO_PEERCRED fills it.
struct PeerCredentials {
    var pid: Int32
    var uid: UInt32
    var gid: UInt32
}

/// The requests in flight across all connections, so shutdown can wait for them or stop them.
public final class RequestTracker: Sendable {
    private struct State {
        var tasks: [UInt64: Task<Void, Never>] = [:]
        var nextID: UInt64 = 0
        var stopping = false
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    /// Registers the task `start` makes for a new request.
    func begin(_ start: (UInt64) -> Task<Void, Never>) {
        state.withLockedValue { s in
            s.nextID += 1
            s.tasks[s.nextID] = start(s.nextID)
        }
    }

    func end(_ id: UInt64) { _ = state.withLockedValue { $0.tasks.removeValue(forKey: id) } }

    func cancel(_ ids: Set<UInt64>) {
        let tasks = state.withLockedValue { s in ids.compactMap { s.tasks[$0] } }
        for t in tasks { t.cancel() }
    }

    /// Cancels every request in flight: their runs are killed and answered.
    public func cancelAll() {
        for t in state.withLockedValue({ Array($0.tasks.values) }) { t.cancel() }
    }

    public var inFlight: Int { state.withLockedValue { $0.tasks.count } }
    public var isStopping: Bool { state.withLockedValue { $0.stopping } }
    public func stop() { state.withLockedValue { $0.stopping = true } }
}
