import NIOConcurrencyHelpers

/// The requests in flight across all connections, so shutdown can wait for them or stop them.
public final class RequestTracker: Sendable {
    private struct State {
        var tasks: [UInt64: Task<Void, Never>] = [:]
        var nextID: UInt64 = 0
        var stopping = false
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

    func end(_ id: UInt64) { _ = state.withLockedValue { $0.tasks.removeValue(forKey: id) } }

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
}
