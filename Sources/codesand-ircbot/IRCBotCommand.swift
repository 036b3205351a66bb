import ArgumentParser
import CodesandClient
import CodesandIRCBot
import CodesandProtocol
import Foundation
import Logging

/// The example IRC bot: `codesand-ircbot --server irc.example.net:6667 --channel '#code'`.
@main
struct IRCBotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codesand-ircbot",
        abstract: "An IRC bot that runs code snippets through codesandd: `!py print(1)` answers `1`.",
        discussion: """
            Default triggers: \(TriggerMap.defaults.languages.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
            The server connection is plain TCP; for TLS run a local tunnel such as stunnel.
            """)

    @Option(help: "The IRC server, host:port (port 6667 when omitted).")
    var server: String

    @Option(help: "The bot's nick.")
    var nick = "codesand"

    @Option(name: .customLong("channel"), help: "A channel to join; repeat for more.")
    var channels: [String] = []

    @Option(help: "codesandd's socket (default: $CODESAND_SOCKET, else \(CodesandClient.defaultSocketPath)).")
    var socket: String?

    @Option(name: .customLong("trigger"), help: "TRIGGER=LANGUAGE, e.g. '!py=python3'; repeat for more. Adds to the defaults or replaces one.")
    var triggers: [String] = []

    @Flag(help: "Use only the --trigger flags, not the default triggers.")
    var noDefaultTriggers = false

    @Option(help: "Output lines per reply (then a \"(N more lines)\" note).")
    var maxLines = 10

    @Option(help: "Bytes per reply line (it is also kept within IRC's 512-byte line).")
    var maxLineBytes = 400

    @Option(help: "Snippets per nick per minute, also the burst; 0 for no limit.")
    var ratePerMinute = 5

    @Option(help: "Wall-clock limit per run, ms (default: the daemon's).")
    var wallMs: Int64?

    @Option(help: "The server password (PASS), if it needs one.")
    var password: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        guard parseServer() != nil else { throw ValidationError("--server must be host or host:port, got \(server)") }
        for channel in channels where !(channel.first.map { "#&+!".contains($0) } ?? false) || channel.contains(" ") || channel.contains(",") {
            throw ValidationError("--channel \(channel): a channel name starts with # (or &, +, !) and has no spaces or commas")
        }
        guard (1...100).contains(maxLines) else { throw ValidationError("--max-lines must be 1…100") }
        guard (32...400).contains(maxLineBytes) else { throw ValidationError("--max-line-bytes must be 32…400") }
        guard ratePerMinute >= 0 else { throw ValidationError("--rate-per-minute must be 0 or more") }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "codesand-ircbot")
        let (host, port) = parseServer()!
        let triggerMap: TriggerMap
        do {
            triggerMap = noDefaultTriggers ? try TriggerMap(specs: triggers) : try TriggerMap.defaults(plus: triggers)
        } catch {
            throw ValidationError("\(error)")
        }
        let config = BotConfiguration(
            host: host, port: port, password: password, nick: nick, channels: channels, triggers: triggerMap,
            shaper: IRCOutputShaper(maxLines: maxLines, maxLineBytes: maxLineBytes), ratePerMinute: ratePerMinute,
            limits: wallMs.map { RunLimits(wallMs: $0) })
        let socketPath = socket ?? ProcessInfo.processInfo.environment["CODESAND_SOCKET"] ?? CodesandClient.defaultSocketPath
        let bot = IRCBot(configuration: config, runner: CodesandRunner(socketPath: socketPath), logger: logger)

        // An IRC connection ends sooner or later (netsplits, restarts): come back, waiting longer
        // after each failure, up to five minutes.
        var backoff: Duration = .seconds(5)
        while !Task.isCancelled {
            let started = ContinuousClock.now
            do {
                try await bot.run()
            } catch {
                logger.error("IRC connection failed", metadata: ["error": "\(error)"])
            }
            if ContinuousClock.now - started > .seconds(300) { backoff = .seconds(5) }
            logger.info("reconnecting", metadata: ["in_s": "\(backoff.components.seconds)"])
            try await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(300))
        }
    }

    private func parseServer() -> (String, Int)? {
        let parts = server.split(separator: ":", omittingEmptySubsequences: false)
        switch parts.count {
        case 1 where !server.isEmpty: return (server, 6667)
        case 2 where !parts[0].isEmpty: return Int(parts[1]).flatMap { (1...65535).contains($0) ? (String(parts[0]), $0) : nil }
        default: return nil
        }
    }
}
