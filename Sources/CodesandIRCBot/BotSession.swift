/// What the bot does in answer to what the IRC server says, as a pure state machine: it takes
/// messages (and the time) and returns actions; `IRCBot` carries them out. So the IRC logic is
/// tested without a network, and the connection code holds no IRC rules.
public struct BotSession: Sendable {
    public enum Action: Sendable, Hashable {
        case send(IRCMessage)
        case run(SnippetRequest)
    }

    public let configuration: BotConfiguration
    /// The nick the server knows us by (it may differ from the configured one after a collision).
    public private(set) var nick: String
    public private(set) var isRegistered = false
    private var limiter: NickRateLimiter

    public init(configuration: BotConfiguration) {
        self.configuration = configuration
        self.nick = configuration.nick
        self.limiter = NickRateLimiter(perMinute: configuration.ratePerMinute)
    }

    /// Formats replies with the bot's current nick; a value, so a finished run can use it off the session.
    public var formatter: ReplyFormatter { ReplyFormatter(shaper: configuration.shaper, botNick: nick) }

    /// Registration: what a client sends first (RFC 2812 §3.1).
    public mutating func start() -> [Action] {
        var out: [Action] = []
        if let password = configuration.password { out.append(.send(IRCMessage("PASS", [password]))) }
        out.append(.send(IRCMessage("NICK", [nick])))
        out.append(.send(IRCMessage("USER", [configuration.username, "0", "*", configuration.realname])))
        return out
    }

    public mutating func handle(_ message: IRCMessage, now: ContinuousClock.Instant) -> [Action] {
        switch message.command {
        case "PING":
            return [.send(IRCMessage("PONG", message.params.isEmpty ? [nick] : message.params))]
        case "001":  // RPL_WELCOME: registered, and its first parameter is our nick
            isRegistered = true
            if let given = message.params.first, !given.isEmpty { nick = given }
            // One JOIN per channel keeps each line short however many channels there are.
            return configuration.channels.map { .send(IRCMessage("JOIN", [$0])) }
        case "432", "433", "436", "437":  // nick unusable or taken: before registering, try another
            guard !isRegistered else { return [] }
            nick = Self.alternative(to: nick)
            return [.send(IRCMessage("NICK", [nick]))]
        case "NICK":
            if let old = message.nick, ircLowercased(old) == ircLowercased(nick), let new = message.params.first {
                nick = new
            }
            return []
        case "PRIVMSG":
            return privmsg(message, now: now)
        default:
            return []
        }
    }

    private mutating func privmsg(_ message: IRCMessage, now: ContinuousClock.Instant) -> [Action] {
        guard isRegistered, message.params.count >= 2, let sender = message.nick, !sender.isEmpty,
              ircLowercased(sender) != ircLowercased(nick) else { return [] }
        let target = message.params[0], text = message.params[1]
        // CTCP (\x01…) is never a snippet; anything else is matched against the triggers.
        guard !text.hasPrefix("\u{01}"), let (language, code) = configuration.triggers.match(text) else { return [] }
        let isChannel = target.first.map { "#&+!".contains($0) } ?? false
        let request = SnippetRequest(nick: sender, replyTarget: isChannel ? target : sender, language: language, code: code)
        switch limiter.check(sender, now: now) {
        case .allowed:
            return [.run(request)]
        case .limitedNotify:
            let rate = configuration.ratePerMinute
            return [.send(.notice(sender, "Slow down: at most \(rate) snippet\(rate == 1 ? "" : "s") a minute each. Try again shortly."))]
        case .limitedSilently:
            return []
        }
    }

    /// `codesand` → `codesand_`; a nick already at the usual 9-character limit changes its last
    /// character instead, so the attempts differ even where the server cuts long nicks.
    static func alternative(to nick: String) -> String {
        if nick.count < 9 { return nick + "_" }
        let last = nick.last.flatMap(\.wholeNumberValue).map { ($0 + 1) % 10 } ?? 0
        return String(nick.dropLast()) + String(last)
    }
}
