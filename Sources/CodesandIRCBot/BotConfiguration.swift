import CodesandClient
import CodesandProtocol

/// One IRC server to connect to.
public struct IRCServerAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// TLS (the default on real networks, port 6697) or plain TCP (6667).
    public var tls: Bool

    public init(host: String, port: Int? = nil, tls: Bool) {
        self.host = host
        self.port = port ?? (tls ? 6697 : 6667)
        self.tls = tls
    }

    public var description: String { "\(host):\(port)\(tls ? " (TLS)" : "")" }
}

/// How the bot checks the server's certificate, and its own certificate for SASL EXTERNAL.
public struct TLSSettings: Sendable, Hashable {
    /// PEM file of the CA(s) to trust instead of the system's store (for a private CA).
    public var caFile: String?
    /// No certificate check at all: only by explicit request, and logged as a warning.
    public var insecure: Bool
    /// PEM certificate and key the bot presents (SASL EXTERNAL, or CertFP with services).
    public var clientCertificate: String?
    public var clientKey: String?

    public init(caFile: String? = nil, insecure: Bool = false, clientCertificate: String? = nil, clientKey: String? = nil) {
        self.caFile = caFile
        self.insecure = insecure
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
    }
}

/// Everything the bot is told at start (its config file and flags).
public struct BotConfiguration: Sendable {
    /// Tried in turn: after a failure the next one, after the last the first again.
    public var servers: [IRCServerAddress]
    public var tls: TLSSettings
    /// The server's own password (PASS), rarely needed.
    public var password: String?
    public var sasl: SASLCredentials?
    public var nick: String
    public var username: String
    public var realname: String
    /// Joined after registering; each starts with `#`, `&`, `+` or `!`.
    public var channels: [String]
    public var triggers: TriggerMap
    /// Output shaping: lines per reply, bytes per line, stderr colour, trigger guard.
    public var shaper: IRCOutputShaper
    /// Snippets per nick per minute (also the burst); 0 turns the limit off.
    public var ratePerMinute: Int
    /// Snippets per channel per minute (also the burst); 0 turns the limit off.
    public var channelRatePerMinute: Int
    /// Limits sent with each run; nil fields take the daemon's defaults.
    public var limits: RunLimits?
    /// How long to wait for a run's reply (its wall limit plus any queueing at the daemon).
    public var replyTimeout: Duration
    /// Lines the bot sends at once before it slows to one per `sendInterval`: IRC servers
    /// disconnect clients that flood them (commonly a few lines at once, then one a second).
    public var sendBurst: Int
    public var sendInterval: Duration
    /// After this long without a line from the server the bot sends a PING; with no line
    /// `pingTimeout` later the link is taken for dead and the bot reconnects.
    public var pingInterval: Duration
    public var pingTimeout: Duration
    /// While the configured nick is taken, how often the bot tries to take it back.
    public var regainNickInterval: Duration
    /// Waits between connection attempts: the first, and the most after repeated failures.
    public var reconnectDelay: Duration
    public var reconnectMaxDelay: Duration

    public init(host: String, port: Int = 6667, tls: Bool = false, password: String? = nil, nick: String = "codesand",
                username: String = "codesand", realname: String = "codesand: runs code snippets",
                channels: [String] = [], triggers: TriggerMap = .defaults, shaper: IRCOutputShaper = IRCOutputShaper(),
                ratePerMinute: Int = 5, channelRatePerMinute: Int = 0, limits: RunLimits? = nil,
                replyTimeout: Duration = .seconds(60), sendBurst: Int = 5, sendInterval: Duration = .seconds(1)) {
        self.servers = [IRCServerAddress(host: host, port: port, tls: tls)]
        self.tls = TLSSettings()
        self.password = password
        self.sasl = nil
        self.nick = nick
        self.username = username
        self.realname = realname
        self.channels = channels
        self.triggers = triggers
        self.shaper = shaper
        self.ratePerMinute = ratePerMinute
        self.channelRatePerMinute = channelRatePerMinute
        self.limits = limits
        self.replyTimeout = replyTimeout
        self.sendBurst = sendBurst
        self.sendInterval = sendInterval
        self.pingInterval = .seconds(90)
        self.pingTimeout = .seconds(60)
        self.regainNickInterval = .seconds(30)
        self.reconnectDelay = .seconds(2)
        self.reconnectMaxDelay = .seconds(300)
    }

    /// The first server: where a one-server bot connects.
    public var host: String { servers.first?.host ?? "" }
    public var port: Int { servers.first?.port ?? 6667 }
}

extension Duration {
    /// Seconds as a Double, for rates and log lines.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

extension BotConfiguration {
    /// What is wrong with this configuration as a whole (each with the config key it concerns).
    public func validate() throws(BotConfigError) {
        guard !nick.isEmpty, !nick.contains(where: { " ,:!@*?#&".contains($0) }) else {
            throw BotConfigError(key: "nick", problem: "\"\(nick)\" is not a nick")
        }
        for channel in channels where !(channel.first.map { "#&+!".contains($0) } ?? false) || channel.contains(" ") || channel.contains(",") {
            throw BotConfigError(key: "channels", problem: "\"\(channel)\": a channel name starts with # (or &, +, !) and has no spaces or commas")
        }
        for (i, server) in servers.enumerated() where server.host.isEmpty || server.host.contains(" ") {
            throw BotConfigError(key: "servers[\(i)].host", problem: "\"\(server.host)\" is not a host name")
        }
        guard let sasl else { return }
        switch sasl.mechanism {
        case .plain:
            guard !sasl.account.isEmpty else { throw BotConfigError(key: "sasl.account", problem: "SASL PLAIN needs the account name") }
            if let i = servers.firstIndex(where: { !$0.tls }) {
                throw BotConfigError(key: "servers[\(i)].tls", problem: "SASL PLAIN would send the password in clear: use TLS")
            }
        case .external:
            guard tls.clientCertificate != nil else {
                throw BotConfigError(key: "tls.client_cert", problem: "SASL EXTERNAL needs the bot's client certificate")
            }
            if let i = servers.firstIndex(where: { !$0.tls }) {
                throw BotConfigError(key: "servers[\(i)].tls", problem: "SASL EXTERNAL needs TLS (the certificate is the credential)")
            }
        }
    }
}
