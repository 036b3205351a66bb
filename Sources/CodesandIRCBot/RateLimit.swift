/// A token bucket: up to `capacity` at once, refilled at `perSecond`. Pure: the caller passes the
/// time, so tests need no sleeps.
public struct TokenBucket: Sendable, Hashable {
    public let capacity: Double
    public let perSecond: Double
    private var tokens: Double
    private var updated: ContinuousClock.Instant

    public init(capacity: Double, perSecond: Double, now: ContinuousClock.Instant) {
        self.capacity = capacity
        self.perSecond = perSecond
        self.tokens = capacity
        self.updated = now
    }

    /// Takes a token if there is one.
    public mutating func take(now: ContinuousClock.Instant) -> Bool {
        refill(now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// How long until a token is there (zero when one is).
    public mutating func wait(now: ContinuousClock.Instant) -> Duration {
        refill(now)
        return tokens >= 1 ? .zero : .milliseconds(Int64(((1 - tokens) / perSecond * 1000).rounded(.up)))
    }

    /// Full again: as if it had never been used, so it can be forgotten.
    public mutating func isFull(now: ContinuousClock.Instant) -> Bool {
        refill(now)
        return tokens >= capacity
    }

    private mutating func refill(_ now: ContinuousClock.Instant) {
        guard now > updated else { return }
        let elapsed = now - updated
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        tokens = min(capacity, tokens + seconds * perSecond)
        updated = now
    }
}

/// Snippets per nick: `perMinute` on average, as a burst of up to `perMinute` at once. A nick that
/// goes over is told once (a notice), then ignored until it has a token again, so a flood of
/// requests does not become a flood of notices.
public struct NickRateLimiter: Sendable {
    public enum Decision: Sendable, Hashable {
        case allowed
        /// Over the limit for the first time since its last allowed request: tell it once.
        case limitedNotify
        /// Over the limit again: say nothing.
        case limitedSilently
    }

    /// 0 means no limit.
    public let perMinute: Int
    private var buckets: [String: (bucket: TokenBucket, notified: Bool)] = [:]

    public init(perMinute: Int) {
        self.perMinute = max(0, perMinute)
    }

    public mutating func check(_ nick: String, now: ContinuousClock.Instant) -> Decision {
        guard perMinute > 0 else { return .allowed }
        let key = ircLowercased(nick)
        if buckets.count > 10_000 { forgetIdle(now: now) }
        var entry = buckets[key] ?? (TokenBucket(capacity: Double(perMinute), perSecond: Double(perMinute) / 60, now: now), false)
        defer { buckets[key] = entry }
        if entry.bucket.take(now: now) {
            entry.notified = false
            return .allowed
        }
        if entry.notified { return .limitedSilently }
        entry.notified = true
        return .limitedNotify
    }

    /// Drops nicks whose bucket has refilled: they are as good as new, and the map stays small.
    private mutating func forgetIdle(now: ContinuousClock.Instant) {
        buckets = buckets.filter { _, entry in
            var bucket = entry.bucket
            return !bucket.isFull(now: now)
        }
    }
}
