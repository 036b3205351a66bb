/// The bot's outgoing lines, paced: a token bucket of lines (`burst` at once, then `perSecond`),
/// so however many answers are ready at once the server never sees more than it allows and does
/// not drop the bot for "Excess Flood". Lines that keep the connection (PONG, CAP, AUTHENTICATE,
/// NICK, JOIN…) go before queued chat lines, so a long answer cannot delay a PONG into a ping
/// timeout. Pure: the caller passes the time.
public struct SendQueue: Sendable {
    public enum Next: Sendable, Hashable {
        case send(IRCMessage)
        /// Nothing may go before this much time has passed.
        case wait(Duration)
        case empty
    }

    /// Chat lines beyond this many are dropped (with control lines, they would only ever be late).
    public let maxQueued: Int
    private var bucket: TokenBucket
    private var control: [IRCMessage] = []
    private var chat: [IRCMessage] = []
    public private(set) var dropped = 0

    public init(burst: Int, perSecond: Double, maxQueued: Int = 256, now: ContinuousClock.Instant) {
        bucket = TokenBucket(capacity: Double(max(1, burst)), perSecond: max(0.01, perSecond), now: now)
        self.maxQueued = maxQueued
    }

    public var count: Int { control.count + chat.count }

    /// Queues a message; false if it was dropped because the queue is full.
    @discardableResult
    public mutating func push(_ message: IRCMessage) -> Bool {
        if message.command == "PRIVMSG" || message.command == "NOTICE" {
            guard chat.count < maxQueued else {
                dropped += 1
                return false
            }
            chat.append(message)
        } else {
            control.append(message)
        }
        return true
    }

    /// The next line to send now (its token taken), or how long to wait for one.
    public mutating func next(now: ContinuousClock.Instant) -> Next {
        guard count > 0 else { return .empty }
        let wait = bucket.wait(now: now)
        guard wait == .zero, bucket.take(now: now) else { return .wait(max(wait, .milliseconds(1))) }
        return .send(control.isEmpty ? chat.removeFirst() : control.removeFirst())
    }
}
