import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// On the listening channel: when accept() fails for want of a file descriptor or memory
/// (EMFILE, ENFILE, ENOBUFS, ENOMEM), stop accepting for `pause`, then try again. The connections
/// already accepted are served meanwhile; the ones waiting stay in the listen backlog.
///
/// Not NIO's AcceptBackoffHandler: it delays the channel's next `read()`, but when the first
/// accept of a wake-up fails, swift-nio's ServerSocketChannel keeps its read pending (it clears it
/// only after an accept that succeeds), so no new `read()` comes, the socket stays registered as
/// readable and the event loop spins at 100% CPU until an fd frees. Turning autoRead off
/// unregisters the socket; turning it on again registers it and reads.
final class AcceptPauseHandler: ChannelInboundHandler, @unchecked Sendable {  // event loop only
    typealias InboundIn = Channel
    typealias InboundOut = Channel

    static let recoverable: Set<Int32> = [EMFILE, ENFILE, ENOBUFS, ENOMEM]

    private let pause: TimeAmount
    private var resume: Scheduled<Void>?

    init(pause: TimeAmount) {
        self.pause = pause
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let e = error as? IOError, Self.recoverable.contains(e.errnoCode), resume == nil {
            let channel = context.channel
            channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
            resume = context.eventLoop.scheduleTask(in: pause) { [self] in
                resume = nil
                channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
            }
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
        context.fireChannelInactive()
    }
}
