import Synchronization

/// A run's turn among the runs at once (pool.size): a run that has used no CPU for a while — a
/// `sleep`, a wait for input — gives it back to the pool, so a waiting request runs meanwhile
/// (one user's sleeping runs cannot hold every turn), and takes one again when it uses CPU. The
/// backend's supervisor says when (NativeBackend: StageMachine's `.turn`); only a run holding
/// little memory gives its turn back, so what runs may hold at once stays about pool.size runs'
/// worth. Idempotent; nothing after `end`.
public final class RunTurn: Sendable {
    private let scheduler: SlotScheduler
    private let state = Mutex<(given: Bool, ended: Bool)>((false, false))

    init(scheduler: SlotScheduler) { self.scheduler = scheduler }

    /// `idle`: the run has used no CPU for a while (give the turn back), or uses CPU again (take one).
    public func runIsIdle(_ idle: Bool) {
        let change: Bool = state.withLock { s in
            guard !s.ended, s.given != idle else { return false }
            s.given = idle
            return true
        }
        guard change else { return }
        if idle { scheduler.yieldTurn() } else { scheduler.takeTurnBack() }
    }

    /// The run ended: true if it still held its turn (which its end gives back).
    func end() -> Bool {
        state.withLock { s in
            s.ended = true
            return !s.given
        }
    }
}
