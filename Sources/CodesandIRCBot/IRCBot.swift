import CodesandClient
import CodesandProtocol
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// The IRC bot: connects (TLS or plain), logs in (SASL), joins its channels and answers triggers;
/// when the connection drops it comes back after a pause (``Backoff``), to the next server.
///
/// The IRC rules are in ``BotSession``; this type only moves bytes and starts runs. Runs belong to
/// their connection: when it ends they are cancelled, so an answer never goes out on a later
/// connection (where the channel, or the bot's nick, may no longer be what the asker saw).
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

    /// Runs until cancelled, reconnecting after every drop. Throws the ``SessionEnd`` of a fatal
    /// failure (SASL refused), or an error if the TLS settings cannot be used at all.
    public func run(random: @Sendable () -> Double = { Double.random(in: 0..<1) }) async throws {
        let tls = try makeTLSContext()
        var backoff = Backoff(initial: configuration.reconnectDelay, maximum: configuration.reconnectMaxDelay)
        var next = 0
        while true {
            try Task.checkCancellation()
            let server = configuration.servers[next % configuration.servers.count]
            let started = ContinuousClock.now
            do {
                let end = try await runConnection(to: server, tls: tls)
                try Task.checkCancellation()  // stopped, not dropped: nothing to report
                if end.fatal { throw end }  // the caller says why it stops
                logger.warning("disconnected: \(end.reason)", metadata: ["server": "\(server)"])
                if !end.afterRegistration { next += 1 }
            } catch let end as SessionEnd {
                throw end
            } catch {
                try Task.checkCancellation()
                logger.error("could not connect: \(error)", metadata: ["server": "\(server)"])
                next += 1  // this one may be down: try the next
            }
            let delay = backoff.next(connectedFor: ContinuousClock.now - started, random: random)
            logger.info("reconnecting", metadata: ["in_s": "\((delay.seconds * 10).rounded() / 10)"])
            try await Task.sleep(for: delay)
        }
    }

    private func makeTLSContext() throws -> NIOSSLContext? {
        guard configuration.servers.contains(where: \.tls) else { return nil }
        if configuration.tls.insecure {
            logger.warning("TLS certificates are NOT verified (insecure): anyone on the path can read and change what the bot says and hears")
        }
        return try IRCConnection.makeTLSContext(configuration.tls)
    }

    private enum Event: Sendable {
        case line(String)
        case tick
        case closed((any Error)?)
    }

    /// One connection, from connect to close: how it ended. Throws if it could not connect.
    public func runConnection(to server: IRCServerAddress, tls: NIOSSLContext?) async throws -> SessionEnd {
        let channel = try await IRCConnection.open(server, tls: tls, group: group)
        logger.info("connected", metadata: ["server": "\(server)"])
        return try await channel.executeThenClose { inbound, outbound in
            let (events, sink) = AsyncStream.makeStream(of: Event.self)
            let outbox = Outbox(burst: configuration.sendBurst, interval: configuration.sendInterval)
            return try await withThrowingDiscardingTaskGroup(returning: SessionEnd.self) { group in
                group.addTask { await outbox.drain(to: outbound, logger: self.logger) }
                group.addTask {
                    do {
                        for try await line in inbound { sink.yield(.line(line)) }
                        sink.yield(.closed(nil))
                    } catch {
                        sink.yield(.closed(error))  // a TLS failure shows here, e.g. an unverifiable certificate
                    }
                }
                group.addTask {
                    // No child may throw: a discarding group would rethrow it as the connection's end.
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        sink.yield(.tick)
                    }
                }
                var session = BotSession(configuration: configuration)
                var end = SessionEnd("the connection was cancelled", fatal: false)
                var actions = session.start()
                var iterator = events.makeAsyncIterator()
                loop: while true {
                    for action in actions {
                        if case .stop(let why) = action {
                            end = why
                            break loop
                        }
                        perform(action, session: session, outbox: outbox, group: &group)
                    }
                    guard let event = await iterator.next() else { break }
                    let wasRegistered = session.isRegistered
                    switch event {
                    case .line(let line):
                        guard let message = IRCMessage(parsing: line) else { actions = []; continue }
                        actions = session.handle(message, now: .now)
                    case .tick:
                        actions = session.tick(now: .now)
                    case .closed(let error):
                        end = SessionEnd(error.map { "the connection failed: \($0)" } ?? "the server closed the connection", fatal: false)
                        break loop
                    }
                    if !wasRegistered && session.isRegistered {
                        let account = session.isLoggedIn ? configuration.sasl?.account ?? "" : ""
                        logger.info("registered", metadata: ["nick": "\(session.nick)", "sasl": "\(session.isLoggedIn ? "logged in \(account)" : "no")"])
                    }
                }
                // Whatever is still running belonged to this connection: it is not answered.
                outbox.finish()
                group.cancelAll()
                if Task.isCancelled {
                    // Stopped (SIGTERM): leave with a QUIT rather than vanish. In a task of its own,
                    // as this one's cancellation would refuse the write; the socket closes next.
                    await Task { try? await outbound.write(ByteBuffer(string: "QUIT :codesand-ircbot stopping\r\n")) }.value
                }
                end.afterRegistration = session.isRegistered
                return end
            }
        }
    }

    private func perform(_ action: BotSession.Action, session: BotSession, outbox: Outbox,
                         group: inout ThrowingDiscardingTaskGroup<any Error>) {
        switch action {
        case .send(let message):
            outbox.push(message)
        case .run(let request):
            let formatter = session.formatter
            group.addTask {
                let outcome = await self.run(request)
                guard !Task.isCancelled else { return }
                for message in formatter.replies(to: request, outcome: outcome) {
                    if !outbox.push(message) {
                        self.logger.warning("send queue full: an answer was dropped", metadata: ["nick": "\(request.nick)"])
                        break
                    }
                }
            }
        case .stop:
            break  // handled by the loop
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
}
