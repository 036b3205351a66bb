import CodesandClient
import CodesandProtocol

/// Everything the bot is told at start (the executable's flags).
public struct BotConfiguration: Sendable {
    /// The IRC server. Plain TCP: for TLS, run the bot next to a TLS tunnel (e.g. stunnel).
    public var host: String
    public var port: Int
    public var password: String?
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
    /// Limits sent with each run; nil fields take the daemon's defaults.
    public var limits: RunLimits?
    /// How long to wait for a run's reply (its wall limit plus any queueing at the daemon).
    public var replyTimeout: Duration
    /// Lines the bot sends at once before it slows to one per `sendInterval`: IRC servers
    /// disconnect clients that flood them.
    public var sendBurst: Int
    public var sendInterval: Duration

    public init(host: String, port: Int = 6667, password: String? = nil, nick: String = "codesand",
                username: String = "codesand", realname: String = "codesand: runs code snippets",
                channels: [String] = [], triggers: TriggerMap = .defaults, shaper: IRCOutputShaper = IRCOutputShaper(),
                ratePerMinute: Int = 5, limits: RunLimits? = nil, replyTimeout: Duration = .seconds(60),
                sendBurst: Int = 5, sendInterval: Duration = .milliseconds(500)) {
        self.host = host
        self.port = port
        self.password = password
        self.nick = nick
        self.username = username
        self.realname = realname
        self.channels = channels
        self.triggers = triggers
        self.shaper = shaper
        self.ratePerMinute = ratePerMinute
        self.limits = limits
        self.replyTimeout = replyTimeout
        self.sendBurst = sendBurst
        self.sendInterval = sendInterval
    }
}
