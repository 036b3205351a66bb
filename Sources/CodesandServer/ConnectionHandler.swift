import CodesandCore
import CodesandProtocol
import Foundation
import Logging
import NIOCore

/// One client connection: each line is dispatched concurrently, replies are written as they are
/// ready (any order, matched by id). When the client goes away its runs are cancelled, which kills
/// their sandboxes.
///
/// A request counts as done only once its reply has been written and flushed (or the write failed):
/// a client that shut down its sending side is closed after its last reply, never before it.
final class ConnectionHandler: ChannelInboundHandler, @unchecked Sendable {  // mutable state: event loop only
    typealias InboundIn = LineFrame
    typealias OutboundOut = ByteBuffer

    private let dispatcher: Dispatcher
    private let tracker: RequestTracker
    private let logger: Logger
    private var peer = PeerInfo(pid: 0, uid: UInt32.max, gid: UInt32.max)
    /// This connection's requests whose reply is not written yet (ids in the tracker). Event loop only.
    private var inFlight = Set<UInt64>()
    /// No more requests will come: the client shut down its sending side, or sent an over-long
    /// line. Event loop only.
    private var inputEnded = false
    /// The -32600 reply to an over-long line is not written yet. Event loop only.
    private var tooLongReplyPending = false
    /// How long the rest of an over-long line is read (and dropped) before the connection closes anyway.
    static let tooLongDrainTime = TimeAmount.seconds(5)
    /// Requests in flight on one connection before the daemon stops reading it (backpressure: a
    /// client cannot make the daemon hold unbounded work or replies it does not read).
    static let maxInFlight = 64

    /// Where request tasks run (nil: Swift's global pool). The server gives each connection its
    /// event loop (EventLoopTaskExecutor); made once per connection, on the loop.
    private let makeTaskExecutor: (@Sendable (any EventLoop) -> (any TaskExecutor)?)?
    private var madeTaskExecutor: (any TaskExecutor)?

    init(dispatcher: Dispatcher, tracker: RequestTracker, logger: Logger,
         taskExecutor: (@Sendable (any EventLoop) -> (any TaskExecutor)?)? = nil) {
        self.dispatcher = dispatcher
        self.tracker = tracker
        self.logger = logger
        self.makeTaskExecutor = taskExecutor
    }

    private func taskExecutor(_ loop: any EventLoop) -> (any TaskExecutor)? {
        if madeTaskExecutor == nil { madeTaskExecutor = makeTaskExecutor?(loop) }
        return madeTaskExecutor
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
            // Answered at once; the decoder then drops the rest of the line (so a client still
            // sending it can finish and read this), and the connection closes when that is done
            // and every earlier request is answered; a line still coming after tooLongDrainTime
            // is not waited for.
            let channel = context.channel
            let e = RPCError(.invalidRequest, "Invalid Request: the message is longer than the maximum of this daemon")
            dispatcher.service.metrics.recordError(code: e.code)
            var buffer = channel.allocator.buffer(bytes: RPCEncoder.error(id: nil, e))
            buffer.writeInteger(UInt8(ascii: "\n"))
            tooLongReplyPending = true
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in
                self.tooLongReplyPending = false
                self.closeIfFinished(channel)
            }
            channel.eventLoop.scheduleTask(in: Self.tooLongDrainTime) {
                if !self.inputEnded { channel.close(promise: nil) }  // still sending that line: enough
            }
        case .tooLongEnded:
            inputEnded = true
            closeIfFinished(context.channel)
        case .line(let line):
            let bytes = Array(line.readableBytesView)
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }  // blank line: keep-alive, ignored
            let channel = context.channel
            let peer = self.peer
            let executor = taskExecutor(context.eventLoop)
            // Registered even while stopping: the dispatcher then answers -32003 with the request's id.
            tracker.begin { [dispatcher] id in
                inFlight.insert(id)
                return Task(executorPreference: executor) {
                    // A run's log line and slot reset wait in the loop's queue until its reply is written.
                    let reply = await dispatcher.handle(line: bytes, peer: peer, afterReply: { channel.eventLoop.execute($0) }) { note in
                        self.write(note, to: channel)
                    }
                    if channel.eventLoop.inEventLoop {
                        self.finish(id, reply: reply, channel: channel)
                    } else {
                        channel.eventLoop.execute { self.finish(id, reply: reply, channel: channel) }
                    }
                }
            }
            updateReading(channel)
        }
    }

    /// On the event loop: writes the reply (nil: none, for notifications), and once it is flushed
    /// (or cannot be) the request is done.
    private func finish(_ id: UInt64, reply: Data?, channel: Channel) {
        guard let reply else { return done(id, channel: channel) }
        var buffer = channel.allocator.buffer(capacity: reply.count + 1)
        buffer.writeBytes(reply)
        buffer.writeInteger(UInt8(ascii: "\n"))
        channel.writeAndFlush(buffer).whenComplete { _ in self.done(id, channel: channel) }
    }

    /// On the event loop: the request's reply has left (or the connection is gone).
    private func done(_ id: UInt64, channel: Channel) {
        inFlight.remove(id)
        tracker.end(id)
        updateReading(channel)
        closeIfFinished(channel)
    }

    /// After the client's input ended, closes once every request has its reply written.
    private func closeIfFinished(_ channel: Channel) {
        if inputEnded && inFlight.isEmpty && !tooLongReplyPending { channel.close(promise: nil) }
    }

    /// Reads more requests only while this connection has room for them and its client reads replies.
    private func updateReading(_ channel: Channel) {
        let room = inFlight.count < Self.maxInFlight
        channel.setOption(ChannelOptions.autoRead, value: room && channel.isWritable).whenComplete { _ in }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        updateReading(context.channel)
        context.fireChannelWritabilityChanged()
    }

    /// A notification line (`run.output`), from any thread; NIO queues it on the event loop before
    /// the reply that follows it.
    private func write(_ note: Data, to channel: Channel) {
        var buffer = channel.allocator.buffer(capacity: note.count + 1)
        buffer.writeBytes(note)
        buffer.writeInteger(UInt8(ascii: "\n"))
        channel.writeAndFlush(buffer, promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            inputEnded = true
            closeIfFinished(context.channel)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The client is gone: nobody can read these results; stop the runs and free their sandboxes.
        let running = inFlight
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
