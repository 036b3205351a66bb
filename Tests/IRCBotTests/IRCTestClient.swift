import CodesandTestSupport
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// A second IRC user for the tests: it joins the channel, says things, and keeps every raw line the
/// server sends it. It shares no code with the bot (its own framing and parsing), so a bot bug
/// cannot hide itself by being read back with the same bug.
final class IRCTestClient: Sendable {
    let nick: String
    private let channel: Channel
    private let log: RawLineLog

    private init(nick: String, channel: Channel, log: RawLineLog) {
        self.nick = nick
        self.channel = channel
        self.log = log
    }

    /// Connects and registers (waits for the welcome, 001); over TLS with `tls` (to a server
    /// whose certificate names localhost).
    static func connect(port: Int, nick: String, tls: NIOSSLContext? = nil) async throws -> IRCTestClient {
        let log = RawLineLog()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: "localhost"))
                    }
                    try channel.pipeline.syncOperations.addHandler(RawLineHandler(log: log))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let client = IRCTestClient(nick: nick, channel: channel, log: log)
        try await client.send("NICK \(nick)")
        try await client.send("USER \(nick) 0 * :codesand test client")
        guard await client.waitForLine(timeout: .seconds(10), where: { $0.command == "001" }) != nil else {
            throw FixtureError("\(nick) was not welcomed by the IRC server; got:\n\(client.lines.joined(separator: "\n"))")
        }
        return client
    }

    /// Joins and waits for the end of the names list (366), so the channel's messages reach us.
    func join(_ channelName: String) async throws {
        try await send("JOIN \(channelName)")
        guard await waitForLine(timeout: .seconds(10), where: { $0.command == "366" }) != nil else {
            throw FixtureError("\(nick) could not join \(channelName)")
        }
    }

    func send(_ line: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: line + "\r\n"))
    }

    func say(_ target: String, _ text: String) async throws {
        try await send("PRIVMSG \(target) :\(text)")
    }

    /// Every line received so far, raw (without the final CRLF).
    var lines: [String] { log.lines }

    /// Received lines parsed, from `start` on.
    func messages(from start: Int = 0) -> [RawMessage] {
        log.lines.dropFirst(start).map(RawMessage.init)
    }

    /// Waits until a line (from `start` on) satisfies `match`; nil after `timeout`.
    func waitForLine(from start: Int = 0, timeout: Duration, where match: (RawMessage) -> Bool) async -> RawMessage? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let hit = messages(from: start).first(where: match) { return hit }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Lets more lines arrive for `duration`, then returns those from `start` on.
    func collect(from start: Int, for duration: Duration) async -> [RawMessage] {
        try? await Task.sleep(for: duration)
        return messages(from: start)
    }

    func close() async {
        try? await channel.close()
    }
}

/// A received line split the simplest way: `:prefix COMMAND params… :text`.
struct RawMessage: CustomStringConvertible {
    let raw: String
    let prefix: String?
    let command: String
    /// The parameters before the trailing one.
    let middle: [String]
    /// The trailing parameter (after " :"), if any.
    let text: String?

    init(_ raw: String) {
        self.raw = raw
        var rest = Substring(raw)
        if rest.hasPrefix(":") {
            let end = rest.firstIndex(of: " ") ?? rest.endIndex
            prefix = String(rest[rest.index(after: rest.startIndex)..<end])
            rest = rest[end...].drop { $0 == " " }
        } else {
            prefix = nil
        }
        if let colon = rest.range(of: " :") {
            text = String(rest[colon.upperBound...])
            rest = rest[..<colon.lowerBound]
        } else {
            text = nil
        }
        let words = rest.split(separator: " ").map(String.init)
        command = words.first ?? ""
        middle = Array(words.dropFirst())
    }

    var senderNick: String? { prefix.map { String($0.prefix { $0 != "!" }) } }
    var description: String { raw }
}

/// Lines as the server sent them: split on LF, the CR before it dropped, nothing else touched.
final class RawLineLog: Sendable {
    private let state = Mutex<(lines: [String], partial: [UInt8])>(([], []))

    var lines: [String] { state.withLock { $0.lines } }

    func append(_ bytes: ByteBufferView) {
        state.withLock { state in
            for byte in bytes {
                if byte == UInt8(ascii: "\n") {
                    if state.partial.last == UInt8(ascii: "\r") { state.partial.removeLast() }
                    state.lines.append(String(decoding: state.partial, as: UTF8.self))
                    state.partial.removeAll()
                } else {
                    state.partial.append(byte)
                }
            }
        }
    }
}

private final class RawLineHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let log: RawLineLog

    init(log: RawLineLog) {
        self.log = log
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        log.append(unwrapInboundIn(data).readableBytesView)
    }
}
