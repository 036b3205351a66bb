import CodesandCore
import CodesandProtocol
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// How many client connections the daemon serves at once, in all and from one uid.
public struct ConnectionLimits: Sendable, Equatable {
    public var total: Int
    public var perUID: Int

    public init(total: Int, perUID: Int) {
        self.total = total
        self.perUID = min(perUID, total)
    }
}

/// The connections being served, by uid: who may have one more. Pure state, no I/O.
struct ConnectionCounts {
    let limits: ConnectionLimits
    private(set) var total = 0
    private(set) var byUID: [UInt32: Int] = [:]

    init(limits: ConnectionLimits) {
        self.limits = limits
    }

    /// Counts a new connection from `uid`, or says why it is refused (-32004).
    mutating func admit(uid: UInt32) -> RPCError? {
        if total >= limits.total {
            return RPCError(.tooManyConnections,
                            "too many connections: this daemon serves at most \(limits.total) at once; close one or retry later",
                            data: .object(["limit": .string("total"), "max": .int(Int64(limits.total))]))
        }
        let mine = byUID[uid, default: 0]
        if mine >= limits.perUID {
            return RPCError(.tooManyConnections,
                            "too many connections from uid \(uid): at most \(limits.perUID) at once; close one or retry later",
                            data: .object(["limit": .string("per_uid"), "max": .int(Int64(limits.perUID))]))
        }
        total += 1
        byUID[uid] = mine + 1
        return nil
    }

    mutating func release(uid: UInt32) {
        total -= 1
        let left = byUID[uid, default: 1] - 1
        byUID[uid] = left > 0 ? left : nil
    }
}

/// First in each connection's pipeline: counts it against the limits when it opens. One over a
/// limit gets a single -32004 line (id null) and is closed; nothing it sends is read. This keeps
/// the daemon's file descriptors for the connections it serves and for its sandboxes.
final class ConnectionGate: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {  // state: event loop only
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let counts: NIOLockedValueBox<ConnectionCounts>
    private let metrics: Metrics
    private let logger: Logger
    /// The uid this connection is counted under (nil: not counted, refused or not open yet).
    private var admittedUID: UInt32?
    private var refused = false

    init(counts: NIOLockedValueBox<ConnectionCounts>, metrics: Metrics, logger: Logger) {
        self.counts = counts
        self.metrics = metrics
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        guard let provider = context.channel as? SocketOptionProvider else { return admit(context: context, uid: UInt32.max) }
        // On the event loop the future is already complete: the callback runs now, before any read.
        let cred: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        cred.assumeIsolated().whenComplete { result in
            // A peer whose uid cannot be read is counted under an impossible uid, all such together.
            self.admit(context: context, uid: (try? result.get())?.uid ?? UInt32.max)
        }
    }

    private func admit(context: ChannelHandlerContext, uid: UInt32) {
        if let refusal = counts.withLockedValue({ $0.admit(uid: uid) }) {
            refused = true
            metrics.recordError(code: refusal.code)
            logger.debug("connection refused", metadata: ["peer_uid": "\(uid)", "why": "\(refusal.message)"])
            var line = context.channel.allocator.buffer(bytes: RPCEncoder.error(id: nil, refusal))
            line.writeInteger(UInt8(ascii: "\n"))
            context.writeAndFlush(wrapOutboundOut(line)).whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
            return  // the handlers after this one never see the connection
        }
        admittedUID = uid
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !refused { context.fireChannelRead(data) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let uid = admittedUID {
            counts.withLockedValue { $0.release(uid: uid) }
            admittedUID = nil
        }
        if !refused { context.fireChannelInactive() }
    }
}
