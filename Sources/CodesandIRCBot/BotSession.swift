/// What the bot does in answer to what the IRC server says, as a pure state machine: it takes
/// messages (and the time) and returns actions; `IRCBot` carries them out. So the IRC logic is
/// tested without a network, and the connection code holds no IRC rules. One session is one
/// connection: a new connection starts a new session.
public struct BotSession: Sendable {
    public enum Action: Sendable, Hashable {
        case send(IRCMessage)
        case run(SnippetRequest)
        /// Close this connection; `fatal` also ends the bot.
        case stop(SessionEnd)
    }

    public let configuration: BotConfiguration
    /// The nick the server knows us by (it may differ from the configured one after a collision).
    public private(set) var nick: String
    public private(set) var isRegistered = false
    private var capabilities: CapabilityNegotiator
    private var limiter: NickRateLimiter
    private var channelLimiter: NickRateLimiter
    /// When the server last said anything, and when our unanswered PING went out.
    private var lastHeard: ContinuousClock.Instant
    private var pingSent: ContinuousClock.Instant?
    private var lastRegainAttempt: ContinuousClock.Instant
    private let started: ContinuousClock.Instant

    public init(configuration: BotConfiguration, now: ContinuousClock.Instant = .now) {
        self.configuration = configuration
        self.nick = configuration.nick
        self.capabilities = CapabilityNegotiator(sasl: configuration.sasl)
        self.limiter = NickRateLimiter(perMinute: configuration.ratePerMinute)
        self.channelLimiter = NickRateLimiter(perMinute: configuration.channelRatePerMinute)
        self.lastHeard = now
        self.lastRegainAttempt = now
        self.started = now
    }

    /// Formats replies with the bot's current nick; a value, so a finished run can use it off the session.
    public var formatter: ReplyFormatter { ReplyFormatter(shaper: configuration.shaper, botNick: nick) }

    /// Logged in to an account by SASL on this connection.
    public var isLoggedIn: Bool { capabilities.loggedIn }

    /// Registration: CAP LS first (the server then waits for CAP END), then RFC 2812 §3.1.
    public mutating func start() -> [Action] {
        var out = capabilities.start().map(Self.action)
        if let password = configuration.password { out.append(.send(IRCMessage("PASS", [password]))) }
        out.append(.send(IRCMessage("NICK", [nick])))
        out.append(.send(IRCMessage("USER", [configuration.username, "0", "*", configuration.realname])))
        return out
    }

    public mutating func handle(_ message: IRCMessage, now: ContinuousClock.Instant) -> [Action] {
        lastHeard = now
        pingSent = nil  // any line shows the link is alive
        if let steps = capabilities.handle(message) { return steps.map(Self.action) }
        switch message.command {
        case "PING":
            return [.send(IRCMessage("PONG", message.params.isEmpty ? [nick] : message.params))]
        case "001":  // RPL_WELCOME: registered, and its first parameter is our nick
            isRegistered = true
            if let given = message.params.first, !given.isEmpty { nick = given }
            // One JOIN per channel keeps each line short however many channels there are.
            return configuration.channels.map { .send(IRCMessage("JOIN", [$0])) }
        case "432", "433", "436", "437":  // nick unusable or taken: before registering, try another
            guard !isRegistered else { return [] }  // a failed regain: keep the nick we have
            nick = Self.alternative(to: nick)
            return [.send(IRCMessage("NICK", [nick]))]
        case "NICK":
            if let old = message.nick, let new = message.params.first {
                if same(old, nick) {
                    nick = new
                } else if same(old, configuration.nick) {
                    return regain(now: now)  // whoever had our nick moved off it
                }
            }
            return []
        case "QUIT":
            if let who = message.nick, same(who, configuration.nick) { return regain(now: now) }
            return []
        case "KICK":  // kicked: go back in (a ban keeps us out, and the server says so once)
            if message.params.count >= 2, same(message.params[1], nick) { return [.send(IRCMessage("JOIN", [message.params[0]]))] }
            return []
        case "ERROR":
            return [.stop(SessionEnd("the server closed the link: \(message.params.last ?? "")", fatal: false))]
        case "PRIVMSG":
            return privmsg(message, now: now)
        default:
            return []
        }
    }

    /// Called every second or so: keeps the link checked and tries to take the configured nick back.
    public mutating func tick(now: ContinuousClock.Instant) -> [Action] {
        // A server that talks but never welcomes us (a stuck handshake, services that never answer
        // SASL) is given up as a dead link is.
        if !isRegistered && now - started >= configuration.pingTimeout {
            return [.stop(SessionEnd("not welcomed by the server within \(Int(configuration.pingTimeout.seconds)) s", fatal: false))]
        }
        if let sent = pingSent {
            if now - sent >= configuration.pingTimeout {
                return [.stop(SessionEnd("no answer from the server for \(Int((now - lastHeard).seconds)) s: the link is dead", fatal: false))]
            }
        } else if now - lastHeard >= configuration.pingInterval {
            pingSent = now
            return [.send(IRCMessage("PING", ["codesand"]))]
        }
        if isRegistered, !same(nick, configuration.nick), now - lastRegainAttempt >= configuration.regainNickInterval {
            return regain(now: now)
        }
        return []
    }

    private mutating func regain(now: ContinuousClock.Instant) -> [Action] {
        guard isRegistered, !same(nick, configuration.nick) else { return [] }
        lastRegainAttempt = now
        return [.send(IRCMessage("NICK", [configuration.nick]))]
    }

    private func same(_ a: String, _ b: String) -> Bool { ircLowercased(a) == ircLowercased(b) }

    private mutating func privmsg(_ message: IRCMessage, now: ContinuousClock.Instant) -> [Action] {
        guard isRegistered, message.params.count >= 2, let sender = message.nick, !sender.isEmpty,
              !same(sender, nick) else { return [] }
        let target = message.params[0], text = message.params[1]
        // CTCP (\x01…) is never a snippet; anything else is matched against the triggers.
        guard !text.hasPrefix("\u{01}"), let (language, code) = configuration.triggers.match(text) else { return [] }
        let isChannel = target.first.map { "#&+!".contains($0) } ?? false
        let request = SnippetRequest(nick: sender, replyTarget: isChannel ? target : sender, language: language, code: code)
        switch limiter.check(sender, now: now) {
        case .allowed:
            break
        case .limitedNotify:
            let rate = configuration.ratePerMinute
            return [.send(.notice(sender, "Slow down: at most \(rate) snippet\(rate == 1 ? "" : "s") a minute each. Try again shortly."))]
        case .limitedSilently:
            return []
        }
        // A busy channel is told once too; its limit is shared by everyone in it.
        if isChannel {
            switch channelLimiter.check(target, now: now) {
            case .allowed: break
            case .limitedNotify:
                let rate = configuration.channelRatePerMinute
                return [.send(.notice(sender, "Slow down: at most \(rate) snippets a minute in \(target). Try again shortly."))]
            case .limitedSilently: return []
            }
        }
        return [.run(request)]
    }

    private static func action(_ step: CapabilityNegotiator.Step) -> Action {
        switch step {
        case .send(let message): return .send(message)
        case .end(let end): return .stop(end)
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
