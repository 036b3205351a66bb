import Synchronization

/// The life of a slot: preparing → ready → busy → resetting → ready …; broken when a prepare
/// failed (retried with backoff; a broken slot is never handed out).
public enum SlotState: String, Sendable, CaseIterable {
    case preparing, ready, busy, resetting, broken
}

/// A broken slot as `status` shows it: why its last prepare failed and when it tries again.
public struct BrokenSlot: Sendable, Equatable {
    public var slot: Int
    public var error: String
    /// Failed prepares in a row.
    public var failures: Int
    /// When its next attempt starts (after its back-off).
    public var retryAt: ContinuousClock.Instant
}

/// What `status` reports about the pool: each slot's state, why broken ones are, how long resets take.
public final class SlotBoard: Sendable {
    private struct State {
        var slots: [SlotState]
        var resetMs: [Double] = []   // recent reset durations, newest last
        var brokenCount: Int64 = 0
        var lastError: String? = nil
        var broken: [Int: BrokenSlot] = [:]
    }

    private let state: Mutex<State>

    public init(size: Int) {
        state = Mutex(State(slots: Array(repeating: .preparing, count: size)))
    }

    /// Any state but broken (see markBroken).
    public func set(_ slot: Int, _ s: SlotState) {
        precondition(s != .broken, "use markBroken")
        state.withLock { st in
            st.slots[slot] = s
            st.broken[slot] = nil
        }
    }

    /// A prepare failed (counted in `failures`).
    public func recordFailure(_ error: String) {
        state.withLock { st in
            st.brokenCount += 1
            st.lastError = error
        }
    }

    /// The slot is broken until its next attempt (set(_:_:) with preparing).
    public func markBroken(_ info: BrokenSlot) {
        state.withLock { st in
            st.slots[info.slot] = .broken
            st.broken[info.slot] = info
        }
    }

    /// The broken slots now, by slot number.
    public var brokenSlots: [BrokenSlot] {
        state.withLock { $0.broken.values.sorted { $0.slot < $1.slot } }
    }

    public func recordReset(ms: Double) {
        state.withLock { st in
            st.resetMs.append(ms)
            if st.resetMs.count > 1000 { st.resetMs.removeFirst(st.resetMs.count - 1000) }
        }
    }

    public var counts: [String: Int] {
        state.withLock { st in
            var out = Dictionary(uniqueKeysWithValues: SlotState.allCases.map { ($0.rawValue, 0) })
            for s in st.slots { out[s.rawValue, default: 0] += 1 }
            return out
        }
    }

    /// Slots per group (a cluster member) and state: `groups[slot]` names the slot's group, nil
    /// for none (not counted). Every group has all five states.
    public func counts(by groups: [String?]) -> [String: [String: Int]] {
        let slots = state.withLock { $0.slots }
        var out: [String: [String: Int]] = [:]
        for (slot, group) in groups.enumerated() where slot < slots.count {
            guard let group else { continue }
            out[group, default: Dictionary(uniqueKeysWithValues: SlotState.allCases.map { ($0.rawValue, 0) })][slots[slot].rawValue]! += 1
        }
        return out
    }

    /// p50 and p99 of recent reset durations, in ms (0 when none yet).
    public var resetPercentiles: (p50: Double, p99: Double) {
        let sorted = state.withLock { $0.resetMs }.sorted()
        guard !sorted.isEmpty else { return (0, 0) }
        func pct(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p + 0.5))] }
        return (pct(0.5), pct(0.99))
    }

    public var failures: (count: Int64, last: String?) { state.withLock { ($0.brokenCount, $0.lastError) } }
}
