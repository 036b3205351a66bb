import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// One of an exec operation's websockets (stdin, stdout, stderr or control): a plain HTTP/1.1
/// Upgrade on a connection of its own (over the client's transport: unix socket or TLS). LXD sends output in binary frames of up to 128 KiB (a
/// smaller frame limit silently loses output) and an empty text frame at the end; frames we send
/// must be masked.
final class LXDWebSocket: Sendable {
    /// Incoming frames larger than this close the connection; LXD's are at most 128 KiB.
    static let maxFrameSize = 1 << 20
    /// stdin goes out in frames of at most this.
    static let writeChunk = 64 << 10

    let channel: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>

    private init(channel: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>) {
        self.channel = channel
    }

    private enum Upgrade: Sendable {
        case websocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>)
        case refused(HTTPResponseStatus?)
    }

    /// Opens `GET <operation>/websocket?secret=…`.
    static func connect(_ client: LXDClient, operation: String, secret: String) async throws -> LXDWebSocket {
        let uri = LXDPath.withProject(LXDPath.sub(operation, "websocket", query: "secret=\(LXDPath.queryValue(secret))"), client.project)
        let upgraded: EventLoopFuture<Upgrade> = try await client.transport.connect(group: client.group) { channel in
            channel.eventLoop.makeCompletedFuture {
                let upgrader = NIOTypedWebSocketClientUpgrader<Upgrade>(maxFrameSize: maxFrameSize) { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        .websocket(try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(wrappingChannelSynchronously: channel))
                    }
                }
                var headers = HTTPHeaders()
                headers.add(name: "Host", value: "lxd")
                headers.add(name: "Content-Length", value: "0")
                let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: headers)
                let config = NIOTypedHTTPClientUpgradeConfiguration<Upgrade>(
                    upgradeRequestHead: head, upgraders: [upgrader],
                    notUpgradingCompletionHandler: { channel in channel.eventLoop.makeSucceededFuture(.refused(nil)) })
                return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                    configuration: .init(upgradeConfiguration: config))
            }
        }
        switch try await upgraded.get() {
        case .websocket(let channel):
            return LXDWebSocket(channel: channel)
        case .refused:
            throw LXDError(what: "websocket of \(operation)", message: "LXD refused the upgrade")
        }
    }

    /// Sends `bytes` (in frames of at most 64 KiB), masked as a client must.
    func send(_ bytes: [UInt8], writer: NIOAsyncChannelOutboundWriter<WebSocketFrame>) async throws {
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + Self.writeChunk)
            try await writer.write(Self.frame(.binary, ByteBuffer(bytes: bytes[offset..<end])))
            offset = end
        }
    }

    /// The end of a stream, as LXD marks it: an empty text frame.
    static func endFrame() -> WebSocketFrame { frame(.text, ByteBuffer()) }

    static func closeFrame() -> WebSocketFrame {
        var data = ByteBuffer()
        data.write(webSocketErrorCode: .normalClosure)
        return frame(.connectionClose, data)
    }

    static func frame(_ opcode: WebSocketOpcode, _ data: ByteBuffer) -> WebSocketFrame {
        WebSocketFrame(fin: true, opcode: opcode, maskKey: .random(), data: data)
    }
}
