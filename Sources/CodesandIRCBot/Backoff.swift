/// How long to wait before the next connection attempt: exponential backoff with jitter.
///
/// The delay doubles after each failure from `initial` up to `maximum`; each actual wait is drawn
/// between half and all of it ("equal jitter"), so many bots dropped by one netsplit do not all
/// come back in the same second. A connection that stayed up for `stableAfter` resets it: one drop
/// after a long good session is retried quickly. Pure: the random source is passed in, so tests
/// see exact numbers.
public struct Backoff: Sendable {
    public var initial: Duration
    public var maximum: Duration
    public var stableAfter: Duration
    private var failures = 0

    public init(initial: Duration = .seconds(2), maximum: Duration = .seconds(300), stableAfter: Duration = .seconds(60)) {
        self.initial = max(initial, .milliseconds(1))
        self.maximum = max(maximum, self.initial)
        self.stableAfter = stableAfter
    }

    /// The upper bound of the next wait (before jitter).
    public var ceiling: Duration {
        var d = initial
        for _ in 0..<min(failures, 40) where d < maximum { d = d * 2 }
        return min(d, maximum)
    }

    /// The wait after a connection that lasted `connectedFor` (zero when it never connected);
    /// `random` returns a value in 0..<1.
    public mutating func next(connectedFor: Duration, random: () -> Double) -> Duration {
        if connectedFor >= stableAfter { failures = 0 }
        let ceiling = self.ceiling
        failures += 1
        let fraction = 0.5 + 0.5 * min(max(random(), 0), 1)
        return ceiling * fraction
    }
}
