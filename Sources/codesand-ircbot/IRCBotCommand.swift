import ArgumentParser
import CodesandClient
import CodesandIRCBot
import CodesandProtocol
import Foundation
import Logging

/// The IRC bot: `codesand-ircbot --config /etc/codesand/ircbot.toml`, or for a quick try
/// `codesand-ircbot --server irc.example.net --channel '#code'`.
@main
struct IRCBotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codesand-ircbot",
        abstract: "An IRC bot that runs code snippets through codesandd: `!py print(1)` answers `1`.",
        discussion: """
            Settings come from --config FILE (see --print-default-config); flags override them.
            TLS on port 6697 is the default; passwords come from files or the environment, never flags.
            Exit status 78 (EX_CONFIG): the config is wrong, or the network refused the bot's SASL login.
            Default triggers: \(TriggerMap.defaults.languages.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
            """)

    @Option(help: "The TOML config file.")
    var config: String?

    @Flag(help: "Print the default config (every option, commented) and exit.")
    var printDefaultConfig = false

    @Flag(help: "Check the config (and the files it names) and exit: 0 if it is usable.")
    var checkConfig = false

    @Option(help: "The IRC server, host or host:port, instead of the config's servers (port 6697, or 6667 with --no-tls).")
    var server: String?

    @Flag(help: "Plain TCP to --server instead of TLS.")
    var noTLS = false

    @Option(name: .customLong("tls-ca"), help: "PEM file of the CA to trust instead of the system's (a private CA).")
    var tlsCA: String?

    @Flag(help: "Do not verify the server's TLS certificate (logged as a warning).")
    var insecure = false

    @Option(help: "The bot's nick.")
    var nick: String?

    @Option(name: .customLong("channel"), help: "A channel to join, instead of the config's; repeat for more.")
    var channels: [String] = []

    @Option(help: "codesandd's socket (default: the config's, else $CODESAND_SOCKET, else \(CodesandClient.defaultSocketPath)).")
    var socket: String?

    @Option(name: .customLong("trigger"), help: "TRIGGER=LANGUAGE, e.g. '!py=python3'; repeat for more. Adds to the triggers or replaces one.")
    var triggers: [String] = []

    @Flag(help: "Use only the --trigger flags, not the configured (or default) triggers.")
    var noDefaultTriggers = false

    @Option(help: "Output lines per reply (then a \"(N more lines)\" note).")
    var maxLines: Int?

    @Option(help: "Bytes per reply line (it is also kept within IRC's 512-byte line).")
    var maxLineBytes: Int?

    @Option(help: "Snippets per nick per minute, also the burst; 0 for no limit.")
    var ratePerMinute: Int?

    @Option(help: "Wall-clock limit per run, ms (default: the daemon's).")
    var wallMs: Int64?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String?

    func run() async throws {
        if printDefaultConfig {
            print(BotConfigFile.defaultText, terminator: "")
            return
        }
        let (file, socketPath) = try settings()
        let logger = bootstrapLogging(level: logLevel ?? file.logLevel)
        if checkConfig {
            print("config OK: \(file.configuration.servers.map(\.description).joined(separator: ", ")) as \(file.configuration.nick)")
            return
        }
        let bot = IRCBot(configuration: file.configuration, runner: CodesandRunner(socketPath: socketPath), logger: logger)
        let task = Task { try await bot.run() }
        let signals = Self.cancelOnTermination(task)
        defer { signals.forEach { $0.cancel() } }
        do {
            try await task.value
        } catch let end as SessionEnd {
            logger.error("stopped: \(end.reason)")
            throw ExitCode(78)
        } catch is CancellationError {
            logger.info("stopped by a signal")
        }
    }

    /// SIGTERM (systemd's stop) and SIGINT cancel the bot, which then leaves IRC with a QUIT.
    private static func cancelOnTermination(_ task: Task<Void, any Error>) -> [any DispatchSourceSignal] {
        [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { task.cancel() }
            source.resume()
            return source
        }
    }

    /// The config file (or the defaults) with the flags laid over it, its secrets read, and checked;
    /// an error says which key (or flag) is wrong and exits 78.
    private func settings() throws -> (BotConfigFile, String) {
        do {
            var file: BotConfigFile
            if let config {
                file = try BotConfigFile.load(path: config)
            } else {
                guard server != nil else { throw BotConfigError(key: "", problem: "give --config FILE (see --print-default-config) or --server HOST") }
                file = try BotConfigFile.parse(BotConfigFile.defaultText)
                file.configuration.channels = []
                file.socket = nil
            }
            try applyFlags(to: &file)
            try file.loadSecrets(environment: ProcessInfo.processInfo.environment)
            try file.configuration.validate()
            if file.configuration.servers.contains(where: \.tls) {
                do {
                    _ = try IRCConnection.makeTLSContext(file.configuration.tls)
                } catch {
                    throw BotConfigError(key: "tls", problem: "the CA or client certificate files cannot be used: \(error)")
                }
            }
            let socketPath = socket ?? file.socket ?? ProcessInfo.processInfo.environment["CODESAND_SOCKET"] ?? CodesandClient.defaultSocketPath
            return (file, socketPath)
        } catch {
            FileHandle.standardError.write(Data("codesand-ircbot: \(config.map { "\($0): " } ?? "")\(error)\n".utf8))
            throw ExitCode(78)
        }
    }

    private func applyFlags(to file: inout BotConfigFile) throws(BotConfigError) {
        var c = file.configuration
        if let server {
            let parts = server.split(separator: ":", omittingEmptySubsequences: false)
            let port = parts.count == 2 ? Int(parts[1]).flatMap { (1...65535).contains($0) ? $0 : nil } : nil
            guard (parts.count == 1 || (parts.count == 2 && port != nil)), !parts[0].isEmpty else {
                throw BotConfigError(key: "--server", problem: "must be host or host:port, got \(server)")
            }
            c.servers = [IRCServerAddress(host: String(parts[0]), port: port, tls: !noTLS)]
        }
        if let tlsCA { c.tls.caFile = tlsCA }
        if insecure { c.tls.insecure = true }
        if let nick { c.nick = nick }
        if !channels.isEmpty { c.channels = channels }
        if noDefaultTriggers || !triggers.isEmpty {
            do {
                let added = try TriggerMap(specs: triggers)
                var specs = noDefaultTriggers ? [] : c.triggers.languages.map { "\($0.key)=\($0.value)" }
                specs += added.languages.map { "\($0.key)=\($0.value)" }
                c.triggers = try TriggerMap(specs: specs)
            } catch {
                throw BotConfigError(key: "--trigger", problem: "\(error)")
            }
        }
        if let maxLines {
            guard (1...100).contains(maxLines) else { throw BotConfigError(key: "--max-lines", problem: "must be 1…100") }
            c.shaper.maxLines = maxLines
        }
        if let maxLineBytes {
            guard (32...400).contains(maxLineBytes) else { throw BotConfigError(key: "--max-line-bytes", problem: "must be 32…400") }
            c.shaper.maxLineBytes = maxLineBytes
        }
        if let ratePerMinute {
            guard ratePerMinute >= 0 else { throw BotConfigError(key: "--rate-per-minute", problem: "must be 0 or more") }
            c.ratePerMinute = ratePerMinute
        }
        if let wallMs { c.limits = RunLimits(wallMs: wallMs) }
        if let logLevel, !BotConfigFile.logLevels.contains(logLevel) {
            throw BotConfigError(key: "--log-level", problem: "must be one of \(BotConfigFile.logLevels.joined(separator: ", "))")
        }
        file.configuration = c
    }

    private func bootstrapLogging(level: String) -> Logger {
        let level = Logger.Level(rawValue: level) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "codesand-ircbot")
    }
}
