import NIOConcurrencyHelpers

/// The requests in flight across all connections, so shutdown can wait for them or stop them.
public final class RequestTracker: Sendable {
    private struct State {
        var tasks: [UInt64: Task<Void, Never>] = [:]
        var nextID: UInt64 = 0
        var stopping = false
        /// Those waiting for idle (no request in flight), by waiter number.
        var idleWaiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        var nextWaiter: UInt64 = 0

        /// Takes the idle waiters when nothing is in flight: the caller resumes them, outside the lock.
        mutating func takeIdleWaiters() -> [CheckedContinuation<Bool, Never>] {
            guard tasks.isEmpty, !idleWaiters.isEmpty else { return [] }
            defer { idleWaiters.removeAll() }
            return Array(idleWaiters.values)
        }
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    /// Registers the task `start` makes for a new request.
    func begin(_ start: (UInt64) -> Task<Void, Never>) {
        state.withLockedValue { s in
            s.nextID += 1
            s.tasks[s.nextID] = start(s.nextID)
        }
    }

    func end(_ id: UInt64) {
        let idle = state.withLockedValue { s in
            s.tasks.removeValue(forKey: id)
            return s.takeIdleWaiters()
        }
        for waiter in idle { waiter.resume(returning: true) }
    }

    func cancel(_ ids: Set<UInt64>) {
        let tasks = state.withLockedValue { s in ids.compactMap { s.tasks[$0] } }
        for t in tasks { t.cancel() }
    }

    /// Cancels every request in flight: their runs are killed and answered.
    public func cancelAll() {
        for t in state.withLockedValue({ Array($0.tasks.values) }) { t.cancel() }
    }

    public var inFlight: Int { state.withLockedValue { $0.tasks.count } }
    public var isStopping: Bool { state.withLockedValue { $0.stopping } }
    public func stop() { state.withLockedValue { $0.stopping = true } }

    /// Returns true once no request is in flight (at once if none is); false if the calling task
    /// is cancelled first. Requests that begin later do not matter: idle is the moment the count
    /// reaches 0.
    public func waitUntilIdle() async -> Bool {
        let waiter = state.withLockedValue { s in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                // Under the lock, as `end` and the cancellation handler: a cancellation either
                // came before (the flag is already set, seen here) or finds the waiter stored.
                let now: Bool? = state.withLockedValue { s in
                    if s.tasks.isEmpty { return true }
                    if Task.isCancelled { return false }
                    s.idleWaiters[waiter] = c
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            state.withLockedValue { $0.idleWaiters.removeValue(forKey: waiter) }?.resume(returning: false)
        }
    }

    /// `waitUntilIdle`, or false when `timeout` passes first (or the calling task is cancelled).
    public func waitUntilIdle(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.waitUntilIdle() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }
}
