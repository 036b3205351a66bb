import CodesandClient
import CodesandProtocol
import Logging
import NIOCore
import NIOPosix

/// The IRC bot: one connection to an IRC server, serving snippets until the connection ends.
///
/// The IRC rules are in ``BotSession``; this type only moves bytes and starts runs. Everything the
/// bot says goes through one writer task, which encodes each message (refusing CR, LF, NUL and
/// lines over 512 bytes) and paces the lines so the server does not drop the bot for flooding.
public final class IRCBot: Sendable {
    public let configuration: BotConfiguration
    private let runner: any SnippetRunner
    private let group: any EventLoopGroup
    private let logger: Logger

    public init(configuration: BotConfiguration, runner: any SnippetRunner,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) {
        self.configuration = configuration
        self.runner = runner
        self.group = group
        self.logger = logger
    }

    /// Connects, registers, joins the channels and answers triggers until the server closes the
    /// connection (returns) or the task is cancelled. Runs still in flight are then abandoned.
    public func run() async throws {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.so_keepalive), value: 1)  // notice a server that vanished
            .connect(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(IRCLineDecoder()))
                    return try NIOAsyncChannel<String, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        logger.info("connected", metadata: ["server": "\(configuration.host):\(configuration.port)"])
        try await channel.executeThenClose { inbound, outbound in
            // Bounded: past 256 queued lines (two minutes of pacing) new ones are dropped rather
            // than letting a crowd of users grow the queue without end.
            let (outbox, sink) = AsyncStream.makeStream(of: IRCMessage.self, bufferingPolicy: .bufferingOldest(256))
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { await self.write(outbox, to: outbound) }
                var session = BotSession(configuration: configuration)
                for action in session.start() { perform(action, session: session, sink: sink, group: &group) }
                for try await line in inbound {
                    guard let message = IRCMessage(parsing: line) else { continue }
                    if message.command == "ERROR" { logger.info("server error", metadata: ["message": "\(message)"]) }
                    for action in session.handle(message, now: .now) {
                        perform(action, session: session, sink: sink, group: &group)
                    }
                }
                sink.finish()
                group.cancelAll()  // the connection is gone: nothing more can be said
            }
        }
        logger.info("disconnected", metadata: ["server": "\(configuration.host):\(configuration.port)"])
    }

    private func perform(_ action: BotSession.Action, session: BotSession, sink: AsyncStream<IRCMessage>.Continuation,
                         group: inout ThrowingDiscardingTaskGroup<any Error>) {
        switch action {
        case .send(let message):
            sink.yield(message)
        case .run(let request):
            let formatter = session.formatter
            group.addTask {
                let outcome = await self.run(request)
                for message in formatter.replies(to: request, outcome: outcome) { sink.yield(message) }
            }
        }
    }

    private func run(_ request: SnippetRequest) async -> Result<RunResult, CodesandClientError> {
        let params = RunParams(language: request.language, code: request.code, limits: configuration.limits,
                               requester: "\(request.nick)@\(request.replyTarget)")
        do {
            let result = try await runner.run(params, timeout: configuration.replyTimeout)
            logger.debug("ran", metadata: ["nick": "\(request.nick)", "language": "\(request.language)",
                                          "status": "\(result.status.rawValue)", "wall_ms": "\(result.wallMs)"])
            return .success(result)
        } catch {
            logger.info("run failed", metadata: ["nick": "\(request.nick)", "language": "\(request.language)",
                                                    "error": "\(error)"])
            return .failure(error)
        }
    }

    /// The only writer: encodes, paces (a burst, then one line per `sendInterval`) and sends.
    private func write(_ outbox: AsyncStream<IRCMessage>, to outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async {
        let perSecond = 1 / max(0.001, Double(configuration.sendInterval.components.attoseconds) / 1e18
                                       + Double(configuration.sendInterval.components.seconds))
        var pace = TokenBucket(capacity: Double(max(1, configuration.sendBurst)), perSecond: perSecond, now: .now)
        for await message in outbox {
            let line: String
            do {
                line = try message.encoded()
            } catch {
                logger.info("not sent: the message is not valid IRC", metadata: ["error": "\(error)", "command": "\(message.command)"])
                continue
            }
            let wait = pace.wait(now: .now)
            if wait > .zero {
                try? await Task.sleep(for: wait)
                if Task.isCancelled { return }
            }
            _ = pace.take(now: .now)
            do {
                try await outbound.write(ByteBuffer(string: line))
            } catch {
                return  // the connection closed; the reader sees it end
            }
        }
    }
}
