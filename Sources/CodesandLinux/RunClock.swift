/// Where a run's timing decisions read the time: monotonic nanoseconds. Injected into
/// StageMachine, so its deadlines and samples can be tested by moving a clock by hand.
protocol RunClock: Sendable {
    func now() -> UInt64
}

/// CLOCK_MONOTONIC: the real clock.
struct MonotonicClock: RunClock {
    func now() -> UInt64 { monotonicNs() }
}
