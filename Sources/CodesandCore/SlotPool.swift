import Logging
import Synchronization

/// The warm pool: slots handed out by the scheduler, each reset and prepared again right after its
/// run, off the request path, and only then handed out again. A slot whose prepare fails is broken:
/// it tries again after a back-off (0.1 s, doubling up to 30 s), at once after a reload, and at once
/// when another broken slot recovers (the cause is likely gone for all).
public final class SlotPool: SlotEvents {
    public let scheduler: SlotScheduler
    public let board: SlotBoard
    public let planner: PrestartPlanner
    private let backend: any SandboxBackend
    private let metrics: Metrics
    private let logger: Logger
    private let sleep: Sleeper
    private let retries: Mutex<[Retry]>
    /// Where a prepare's task starts and resumes (nil: Swift's pool); see `preparesPrefer`.
    private let prepareExecutor = Mutex<(any TaskExecutor)?>(nil)

    static let firstBackoffMs: UInt64 = 100
    static let maxBackoffMs: UInt64 = 30_000
    /// Failures in a row after which requests stop waiting for a slot (SlotScheduler.markBroken).
    /// One may be passing and already dealt with by the backend (a silent zygote is stopped, and
    /// the next prepare goes the plain way): the slot gets its quick retry first.
    static let failuresBeforeGivingUp = 2

    /// A slot's back-off between failed prepares.
    private struct Retry {
        var failures = 0
        var backoffMs = SlotPool.firstBackoffMs
        /// The back-off wait under way; cancelled to try again at once.
        var wait: Task<Void, any Error>?
        /// Try again at once after the attempt under way (a reload came during it).
        var retryNow = false
    }

    /// `size` slots, of which at most `maxRunning` (nil: all) run at once: the others are spares.
    public init(size: Int, maxRunning: Int? = nil, maxQueue: Int, maxWaitMs: Int64, backend: any SandboxBackend,
                metrics: Metrics, logger: Logger, sleep: @escaping Sleeper = realSleep) {
        self.sleep = sleep
        self.scheduler = SlotScheduler(size: size, maxRunning: maxRunning, maxQueue: maxQueue, maxWaitMs: maxWaitMs,
                                       startFree: false, sleep: sleep)
        self.board = SlotBoard(size: size)
        self.planner = PrestartPlanner(size: size)
        self.backend = backend
        self.metrics = metrics
        self.logger = logger
        self.retries = Mutex(Array(repeating: Retry(), count: size))
    }

    public var size: Int { scheduler.size }

    /// Runs the prepares' tasks on `executor` (the daemon's event loop, when the backend never
    /// blocks its caller): a run's end, on the loop, then wakes only the thread that prepares the
    /// slot, not also one of Swift's pool threads to start the task and another when it is done.
    public func preparesPrefer(_ executor: any TaskExecutor) {
        prepareExecutor.withLock { $0 = executor }
    }

    /// Prepares every slot in the background; each serves requests as soon as it is ready.
    public func start() {
        backend.observe(self)
        for slot in 0..<size { refill(slot, resetting: false) }
    }

    /// A ready slot's sandbox vanished (SlotEvents): out of the free slots, broken with back-off,
    /// then prepared again. A slot in use or being prepared finds out by itself.
    public func sandboxLost(slot: Int, reason: String) {
        guard scheduler.withdraw(slot) else { return }
        logger.warning("slot lost its ready sandbox", metadata: ["slot": "\(slot)", "reason": "\(reason)"])
        guard let wait = failed(slot, error: SandboxError(reason)) else {
            board.set(slot, .preparing)
            Task.detached { [self] in await prepareUntilReady(slot, resetting: false) }
            return
        }
        Task.detached { [self] in
            _ = try? await wait.value
            retries.withLock { r in if r[slot].wait != nil { endBackoff(slot, &r) } }
            await prepareUntilReady(slot, resetting: false)
        }
    }

    /// Waits for a ready slot (fair across `key`s) and marks it busy. `prestart`: the language whose
    /// waiting interpreter the run will use (a slot with it is preferred); nil for a plain run, which
    /// prefers a plain slot rather than stopping an interpreter another request could use.
    public func acquire(key: String, prestart language: String? = nil, plainLanguage: String? = nil,
                        retryHintMs: Int64) async throws -> Int {
        // Plain runs count as demand for plain slots (a name no pre-start spec has).
        if let name = language ?? plainLanguage.map({ "plain:" + $0 }) { planner.noteRequest(language: name) }
        let slot = try await scheduler.acquire(key: key, retryHintMs: retryHintMs) { [planner] slot in
            planner.language(of: slot) == language
        }
        board.set(slot, .busy)
        return slot
    }

    /// A run ended (however it ended): its turn goes to a waiting request (on a prepared spare),
    /// and the slot is reset and prepared before its next use.
    public func finished(_ slot: Int, turn: RunTurn? = nil) {
        if turn?.end() ?? true { scheduler.runEnded() }  // else given back while it was idle
        refill(slot, resetting: true)
    }

    /// A run's turn, which it may give back while idle (see RunTurn).
    public func turn() -> RunTurn { RunTurn(scheduler: scheduler) }

    /// After a reload: takes one ready slot at a time (between requests, fairly) and prepares it
    /// again before taking the next, so the pool moves over slot by slot and at most one slot is out
    /// of service for the reload's sake (an LXD container made from another image takes seconds).
    /// Slots the backend reports outdated are taken first, and again until none is (LXD replaces one
    /// container at a time: a slot prepared meanwhile serves on as it was); with a backend that does
    /// not tell, each slot is taken once. (A native sandbox built before the reload is never used anyway.)
    public func recycleAll() {
        Task.detached { [self] in
            var done = Set<Int>()
            for _ in 0..<(size * 8) {
                let outdated = (0..<size).map { backend.isOutdated(slot: $0) }
                let pending = { (slot: Int) in outdated[slot] ?? !done.contains(slot) }
                guard (0..<size).contains(where: pending) else { return }
                guard let slot = try? await scheduler.acquire(key: "\u{0}reload", retryHintMs: 0, prefer: pending) else { return }
                scheduler.runEnded()  // taken to be prepared again, not to run
                guard pending(slot) else {
                    scheduler.release(slot)  // the pending ones are busy: their runs' end prepares them anyway
                    try? await Task.sleep(for: .milliseconds(50))
                    continue
                }
                done.insert(slot)
                await refill(slot, resetting: true).value
            }
        }
    }

    /// Broken slots try again now, their back-off starting over (a reload: the cause may be fixed).
    /// They count as preparing at once, so a request that comes next waits for the attempt.
    public func retryBroken() {
        retries.withLock { r in
            for slot in r.indices {
                r[slot].backoffMs = Self.firstBackoffMs
                if r[slot].wait != nil {
                    endBackoff(slot, &r)
                } else {
                    r[slot].retryNow = true  // an attempt may be under way with the old configuration
                }
            }
        }
    }

    /// A broken slot's back-off is over (or cut short): it is preparing again. Under `retries`' lock,
    /// so that a later success cannot be overwritten.
    private func endBackoff(_ slot: Int, _ r: inout [Retry]) {
        r[slot].wait?.cancel()
        r[slot].wait = nil
        board.set(slot, .preparing)
        scheduler.markRetrying(slot)
    }

    /// Refuses new waits and fails the waiting ones (daemon shutdown).
    public func stop() {
        scheduler.stop()
    }

    /// Waits until every slot is ready (or `timeout` passes): for tests and benchmarks.
    public func waitUntilReady(timeout: Duration = .seconds(30)) async -> Bool {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if board.counts[SlotState.ready.rawValue] == size { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
    }

    /// A failed prepare marks the slot broken and retries with backoff; it is never handed out broken.
    @discardableResult
    private func refill(_ slot: Int, resetting: Bool) -> Task<Void, Never> {
        board.set(slot, resetting ? .resetting : .preparing)
        return Task(executorPreference: prepareExecutor.withLock { $0 }) { [self] in
            await prepareUntilReady(slot, resetting: resetting)
        }
    }

    private func prepareUntilReady(_ slot: Int, resetting: Bool) async {
        while true {
            let start = ContinuousClock.now
            do {
                try await backend.prepare(slot: slot, prestart: planner.choose(for: slot))
            } catch is CancellationError {
                return  // the backend is shutting down
            } catch {
                guard let wait = failed(slot, error: error) else { continue }
                _ = try? await wait.value  // or cancelled by retryBroken, which ended the back-off itself
                retries.withLock { r in if r[slot].wait != nil { endBackoff(slot, &r) } }
                continue
            }
            if resetting {
                let d = ContinuousClock.now - start
                let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
                board.recordReset(ms: seconds * 1000)
                metrics.recordReset(seconds: seconds)
            }
            let recovered = retries.withLock { r in
                defer { r[slot] = Retry() }
                return r[slot].failures > 0
            }
            board.set(slot, .ready)
            scheduler.release(slot)
            if recovered {
                logger.notice("slot recovered: its sandbox was prepared", metadata: ["slot": "\(slot)"])
                retryBroken()  // what broke this slot likely broke the others, and is gone
            }
            return
        }
    }

    /// Records a failed prepare of `slot`, marks it broken and starts its back-off wait; or returns
    /// nil to try again at once (a reload came during the attempt: the cause may be fixed).
    /// Marked broken under `retries`' lock, so a reload cannot end the back-off before it is marked.
    private func failed(_ slot: Int, error: any Error) -> Task<Void, any Error>? {
        board.recordFailure("\(error)")
        let (failures, delayMs, wait): (Int, UInt64, Task<Void, any Error>?) = retries.withLock { r in
            r[slot].failures += 1
            if r[slot].retryNow {
                r[slot].retryNow = false
                return (r[slot].failures, 0, nil)
            }
            let delay = r[slot].backoffMs
            r[slot].backoffMs = min(delay * 2, Self.maxBackoffMs)
            let wait = Task { [sleep] in try await sleep(.milliseconds(delay)) }
            r[slot].wait = wait
            board.markBroken(BrokenSlot(slot: slot, error: "\(error)", failures: r[slot].failures,
                                        retryAt: ContinuousClock.now + .milliseconds(delay)))
            if r[slot].failures >= Self.failuresBeforeGivingUp { scheduler.markBroken(slot, cause: "\(error)") }
            return (r[slot].failures, delay, wait)
        }
        guard let wait else {
            logger.warning("slot: prepare failed, trying again at once after a reload",
                           metadata: ["slot": "\(slot)", "error": "\(error)"])
            return nil
        }
        logger.error("slot broken: cannot prepare its sandbox; retrying",
                     metadata: ["slot": "\(slot)", "error": "\(error)", "retry_ms": "\(delayMs)", "failures": "\(failures)"])
        return wait
    }
}
