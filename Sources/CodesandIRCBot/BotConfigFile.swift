import CodesandClient
import CodesandProtocol
import TOMLKit

#if canImport(Glibc)
import Glibc
#endif

/// codesand-ircbot's TOML config file: everything the bot needs, read and checked key by key.
/// Secrets are not in it: the SASL and server passwords come from files it names (or the
/// environment), so the config itself can be world-readable and nothing secret is on a command line.
public struct BotConfigFile: Sendable {
    public var configuration: BotConfiguration
    /// codesandd's socket; nil: $CODESAND_SOCKET, else the default.
    public var socket: String?
    public var logLevel: String
    public var saslPasswordFile: String?
    public var serverPasswordFile: String?

    /// The environment variable the SASL password comes from when no file is named.
    public static let saslPasswordVariable = "CODESAND_IRCBOT_SASL_PASSWORD"
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    public static func load(path: String) throws -> BotConfigFile {
        guard let text = readSmallFile(path) else {
            throw BotConfigError(key: "", problem: "cannot read config file \(path)")
        }
        return try parse(text, origin: path)
    }

    public static func parse(_ text: String, origin: String = "config") throws(BotConfigError) -> BotConfigFile {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw BotConfigError(key: "", problem: "\(origin): TOML syntax error at line \(e.source.begin.line), column \(e.source.begin.column): \(e.description)")
        } catch {
            throw BotConfigError(key: "", problem: "\(origin): \(error)")
        }
        var root = TOMLReader(table)
        var c = BotConfiguration(host: "")
        c.nick = try root.string("nick", default: c.nick)
        c.username = try root.string("username", default: c.username)
        c.realname = try root.string("realname", default: c.realname)
        c.channels = try root.strings("channels", default: [])
        let logLevel = try root.string("log_level", default: "info")
        guard logLevels.contains(logLevel) else {
            throw BotConfigError(key: "log_level", problem: "must be one of \(logLevels.joined(separator: ", ")), got \"\(logLevel)\"")
        }

        c.servers = []
        for var s in try root.tables("servers") ?? [] {
            let tls = try s.bool("tls", default: true)
            guard let host = try s.string("host"), !host.isEmpty else { throw BotConfigError(key: s.key("host"), problem: "is required") }
            let port = try s.int("port", default: tls ? 6697 : 6667, in: 1...65535)
            try s.finish()
            c.servers.append(IRCServerAddress(host: host, port: port, tls: tls))
        }
        guard !c.servers.isEmpty else { throw BotConfigError(key: "servers", problem: "at least one [[servers]] table with a host is needed") }

        if var t = try root.table("tls") {
            c.tls = TLSSettings(caFile: try t.string("ca_file"), insecure: try t.bool("insecure", default: false),
                                clientCertificate: try t.string("client_cert"), clientKey: try t.string("client_key"))
            try t.finish()
        }

        var saslPasswordFile: String?
        if var t = try root.table("sasl") {
            let name = try t.string("mechanism", default: "none")
            let account = try t.string("account", default: "")
            saslPasswordFile = try t.string("password_file")
            try t.finish()
            if name.lowercased() != "none" {
                guard let mechanism = SASLMechanism(rawValue: name.uppercased()) else {
                    throw BotConfigError(key: "sasl.mechanism", problem: "must be \"none\", \"plain\" or \"external\", got \"\(name)\"")
                }
                c.sasl = SASLCredentials(mechanism: mechanism, account: account)
            }
        }

        var socket: String?
        if var t = try root.table("codesand") {
            socket = try t.string("socket")
            c.replyTimeout = .seconds(try t.int("reply_timeout_seconds", default: 60, in: 1...3600))
            let wall = try t.int("wall_ms", default: 0, in: 0...3_600_000)
            if wall > 0 { c.limits = RunLimits(wallMs: Int64(wall)) }
            try t.finish()
        }
        if var t = try root.table("limits") {
            c.ratePerMinute = try t.int("runs_per_nick_per_minute", default: c.ratePerMinute, in: 0...10_000)
            c.channelRatePerMinute = try t.int("runs_per_channel_per_minute", default: c.channelRatePerMinute, in: 0...10_000)
            try t.finish()
        }
        if var t = try root.table("output") {
            c.shaper.maxLines = try t.int("max_lines", default: c.shaper.maxLines, in: 1...100)
            c.shaper.maxLineBytes = try t.int("max_line_bytes", default: c.shaper.maxLineBytes, in: 32...400)
            try t.finish()
        }
        if var t = try root.table("send_queue") {
            c.sendBurst = try t.int("burst_lines", default: c.sendBurst, in: 1...100)
            let perSecond = try t.number("lines_per_second", default: 1 / c.sendInterval.seconds, in: 0.05...100)
            c.sendInterval = .milliseconds(Int64((1000 / perSecond).rounded()))
            try t.finish()
        }
        var serverPasswordFile: String?
        if var t = try root.table("connection") {
            c.reconnectDelay = .seconds(try t.int("reconnect_delay_seconds", default: 2, in: 1...3600))
            c.reconnectMaxDelay = .seconds(try t.int("reconnect_max_delay_seconds", default: 300, in: 1...86_400))
            c.pingInterval = .seconds(try t.int("ping_interval_seconds", default: 90, in: 5...3600))
            c.pingTimeout = .seconds(try t.int("ping_timeout_seconds", default: 60, in: 5...3600))
            c.regainNickInterval = .seconds(try t.int("regain_nick_seconds", default: 30, in: 5...3600))
            serverPasswordFile = try t.string("server_password_file")
            try t.finish()
        }
        if var t = try root.table("triggers") {
            var specs: [String] = []
            for trigger in t.allKeys.sorted() {
                guard let language = try t.string(trigger) else { continue }
                specs.append("\(trigger)=\(language)")
            }
            do {
                c.triggers = try TriggerMap(specs: specs)
            } catch {
                throw BotConfigError(key: "triggers", problem: "\(error)")
            }
            try t.finish()
        }
        try root.finish()
        return BotConfigFile(configuration: c, socket: socket, logLevel: logLevel,
                             saslPasswordFile: saslPasswordFile, serverPasswordFile: serverPasswordFile)
    }

    /// Reads the passwords (SASL PLAIN's from its file or the environment; the server's from its
    /// file) into the configuration; an error names the key or variable that is wrong.
    public mutating func loadSecrets(environment: [String: String]) throws(BotConfigError) {
        if let path = serverPasswordFile {
            configuration.password = try Self.secret(path, key: "connection.server_password_file")
        }
        guard var sasl = configuration.sasl, sasl.mechanism == .plain else { return }
        if let path = saslPasswordFile {
            sasl.password = try Self.secret(path, key: "sasl.password_file")
        } else if let value = environment[Self.saslPasswordVariable], !value.isEmpty {
            sasl.password = value
        } else {
            throw BotConfigError(key: "sasl.password_file", problem: "SASL PLAIN needs a password: name a file here, or set \(Self.saslPasswordVariable)")
        }
        configuration.sasl = sasl
    }

    /// The first line of a small file, without its line end.
    static func secret(_ path: String, key: String) throws(BotConfigError) -> String {
        guard let text = readSmallFile(path) else { throw BotConfigError(key: key, problem: "cannot read \(path)") }
        let line = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).first.map(String.init) ?? ""
        guard !line.isEmpty else { throw BotConfigError(key: key, problem: "\(path) is empty") }
        return line
    }
}

/// A file of at most 1 MiB as text, or nil if it cannot be read.
func readSmallFile(_ path: String) -> String? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while bytes.count <= 1 << 20 {
        let n = fread(&chunk, 1, chunk.count, f)
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    guard ferror(f) == 0, bytes.count <= 1 << 20 else { return nil }
    return String(decoding: bytes, as: UTF8.self)
}
