import CodesandProtocol
import Synchronization

/// Waits for a duration; injected so that timing logic is tested without real sleeps.
public typealias Sleeper = @Sendable (Duration) async throws -> Void
public let realSleep: Sleeper = { try await Task.sleep(for: $0) }

/// Hands out sandbox slots 0..<size, one run per slot, at most `maxRunning` runs at once: the
/// other slots are spares, prepared while the running ones run, so that a run ending hands its
/// turn to a slot already prepared instead of one still being reset. When none can be handed
/// out, requests wait in a bounded queue that is fair between clients: waiters are grouped by a key (peer uid and
/// requester) and served round-robin across keys, so one flooding client cannot starve others.
/// When every slot is broken (the pool gave up waiting for it, see SlotPool.failuresBeforeGivingUp),
/// nothing will free up: waiters and new requests fail at once with the cause instead of waiting
/// for max_wait_ms.
public final class SlotScheduler: Sendable {
    public struct Busy: Error, Sendable {
        public var retryAfterMs: Int64
        public var reason: String
    }

    /// The daemon is stopping: no slot will be handed out any more.
    public struct Stopped: Error, Sendable {}

    /// Every slot is broken: no sandbox can be prepared. `cause`: the latest prepare error.
    public struct Unavailable: Error, Sendable, CustomStringConvertible {
        public var brokenSlots: Int
        public var cause: String
        public var description: String {
            (brokenSlots == 1 ? "the only sandbox slot is broken: " : "all \(brokenSlots) sandbox slots are broken: ") + cause
        }
    }

    private struct Waiter {
        let id: UInt64
        let key: String
        let continuation: CheckedContinuation<Int, any Error>
    }

    private struct State {
        var free: [Int]
        /// Slots handed out whose run has not ended (runEnded).
        var running = 0
        var queues: [String: [Waiter]] = [:]
        var keyOrder: [String] = []      // round-robin order of keys with waiters
        var waiting = 0
        var nextID: UInt64 = 0
        var stopped = false
        /// Slots that failed to prepare and that no attempt is preparing now, with the error.
        var broken: [Int: String] = [:]
        var latestCause = ""
        var allBroken: Bool { !broken.isEmpty && broken.count == slots }
        let slots: Int

        let maxRunning: Int

        /// The next waiter in round-robin order and the slot it gets, when a slot is free and fewer
        /// than maxRunning run (the waiter is resumed outside the lock).
        mutating func handOut() -> (Waiter, Int)? {
            guard !keyOrder.isEmpty, !free.isEmpty, running < maxRunning else { return nil }
            let key = keyOrder.removeFirst()
            var q = queues[key]!
            let w = q.removeFirst()
            if q.isEmpty { queues[key] = nil } else { queues[key] = q; keyOrder.append(key) }
            waiting -= 1
            running += 1
            return (w, free.removeLast())
        }

        /// Empties the queue, returning its waiters in round-robin order (resumed outside the lock).
        mutating func takeAllWaiters() -> [Waiter] {
            defer { queues = [:]; keyOrder = []; waiting = 0 }
            return keyOrder.flatMap { queues[$0] ?? [] }
        }
    }

    public let size: Int
    /// Runs at once, at most (≤ size).
    public let maxRunning: Int
    public let maxQueue: Int
    public let maxWaitMs: Int64
    private let state: Mutex<State>
    private let sleep: Sleeper

    /// With `startFree` false no slot is available until it is released (after its first prepare).
    /// `sleep` times the longest wait (tests pass one that does not really sleep).
    public init(size: Int, maxRunning: Int? = nil, maxQueue: Int, maxWaitMs: Int64, startFree: Bool = true,
                sleep: @escaping Sleeper = realSleep) {
        self.size = size
        self.maxRunning = min(size, max(1, maxRunning ?? size))
        self.maxQueue = maxQueue
        self.maxWaitMs = maxWaitMs
        self.sleep = sleep
        self.state = Mutex(State(free: startFree ? Array((0..<size).reversed()) : [], slots: size, maxRunning: self.maxRunning))
    }

    public var queued: Int { state.withLock { $0.waiting } }
    public var available: Int { state.withLock { $0.free.count } }

    /// Why no request can be served now (every slot broken), or nil.
    public var unavailable: Unavailable? {
        state.withLock { s in s.allBroken ? Unavailable(brokenSlots: s.broken.count, cause: s.latestCause) : nil }
    }

    /// Waits for a free slot. Throws Busy when the queue is full or the wait passes max_wait_ms,
    /// Unavailable when every slot is broken (at once, or as soon as the last one breaks),
    /// CancellationError when the task is cancelled while waiting.
    /// A free slot for which `prefer` is true is taken first (a slot with the right interpreter waiting).
    public func acquire(key: String, retryHintMs: Int64, prefer: (Int) -> Bool = { _ in false }) async throws -> Int {
        let id: UInt64 = state.withLock { s in s.nextID += 1; return s.nextID }
        // The wait's timer starts once the waiter is queued: a timer that fired before would find
        // nothing to remove, and the waiter would wait forever.
        let timer = Mutex<Task<Void, any Error>?>(nil)
        defer { timer.withLock { $0?.cancel() } }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Int, any Error>) in
                let immediate: Result<Int, any Error>? = state.withLock { s in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if s.stopped { return .failure(Stopped()) }
                    if s.waiting == 0, !s.free.isEmpty, s.running < maxRunning {
                        let i = s.free.lastIndex(where: prefer) ?? s.free.count - 1
                        s.running += 1
                        return .success(s.free.remove(at: i))
                    }
                    if s.allBroken {
                        return .failure(Unavailable(brokenSlots: s.broken.count, cause: s.latestCause))
                    }
                    if s.waiting >= maxQueue {
                        return .failure(Busy(retryAfterMs: retryHintMs, reason: "\(maxRunning) runs at once and \(s.waiting) requests wait"))
                    }
                    if s.queues[key] == nil { s.keyOrder.append(key) }
                    s.queues[key, default: []].append(Waiter(id: id, key: key, continuation: c))
                    s.waiting += 1
                    return nil
                }
                if let immediate {
                    c.resume(with: immediate)
                    return
                }
                let wait = Task { [maxWaitMs, sleep] in
                    try await sleep(.milliseconds(maxWaitMs))
                    try Task.checkCancellation()
                    self.remove(id: id, error: Busy(retryAfterMs: retryHintMs, reason: "no sandbox became free within \(maxWaitMs) ms"))
                }
                timer.withLock { $0 = wait }
            }
        } onCancel: {
            self.remove(id: id, error: CancellationError())
        }
    }

    /// Returns a slot (ready again, so no longer broken); the next waiter in round-robin order gets
    /// it if fewer than maxRunning runs run.
    public func release(_ slot: Int) {
        let next: (Waiter, Int)? = state.withLock { s in
            s.broken[slot] = nil
            s.free.append(slot)
            return s.handOut()
        }
        if let (waiter, slot) = next { waiter.continuation.resume(returning: slot) }
    }

    /// A run handed a slot has ended (its slot is being reset, and released once prepared): if a
    /// request waits and a slot is free, it runs now.
    public func runEnded() {
        let next: (Waiter, Int)? = state.withLock { s in
            s.running = max(0, s.running - 1)
            return s.handOut()
        }
        if let (waiter, slot) = next { waiter.continuation.resume(returning: slot) }
    }

    /// A running run gave its turn back (it has used no CPU for a while: RunTurn): a waiting request
    /// runs now if a slot is free. Its slot stays handed out until it ends.
    public func yieldTurn() { runEnded() }

    /// A run that gave its turn back uses CPU again: it counts among the runs at once again (more
    /// than maxRunning may then run for a moment; the next hand-out waits until they are fewer).
    public func takeTurnBack() {
        state.withLock { s in s.running += 1 }
    }

    /// Takes `slot` out of the free slots (its sandbox vanished): true if it was free, false if it
    /// is handed out or not released yet.
    public func withdraw(_ slot: Int) -> Bool {
        state.withLock { s in
            guard let i = s.free.firstIndex(of: slot) else { return false }
            s.free.remove(at: i)
            return true
        }
    }

    /// A slot (not free, not handed out) failed to prepare. If it was the last one that could still
    /// become free, every waiter fails now with Unavailable: none would ever get a slot.
    public func markBroken(_ slot: Int, cause: String) {
        let (waiters, unavailable): ([Waiter], Unavailable?) = state.withLock { s in
            s.broken[slot] = cause
            s.latestCause = cause
            guard s.allBroken else { return ([], nil) }
            return (s.takeAllWaiters(), Unavailable(brokenSlots: s.broken.count, cause: cause))
        }
        for w in waiters { w.continuation.resume(throwing: unavailable!) }
    }

    /// A broken slot is being prepared again: requests may wait for the attempt (if it fails too,
    /// markBroken fails them).
    public func markRetrying(_ slot: Int) {
        state.withLock { s in _ = s.broken.removeValue(forKey: slot) }
    }

    /// Fails every waiter and every later acquire with Stopped.
    public func stop() {
        let waiters: [Waiter] = state.withLock { s in
            s.stopped = true
            return s.takeAllWaiters()
        }
        for w in waiters { w.continuation.resume(throwing: Stopped()) }
    }

    private func remove(id: UInt64, error: any Error) {
        let removed: Waiter? = state.withLock { s in
            for (key, q) in s.queues {
                guard let i = q.firstIndex(where: { $0.id == id }) else { continue }
                var q = q
                let w = q.remove(at: i)
                if q.isEmpty {
                    s.queues[key] = nil
                    s.keyOrder.removeAll { $0 == key }
                } else {
                    s.queues[key] = q
                }
                s.waiting -= 1
                return w
            }
            return nil
        }
        removed?.continuation.resume(throwing: error)
    }
}

