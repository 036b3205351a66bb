import Logging

/// The warm pool: slots handed out by the scheduler, each reset and prepared again right after its
/// run, off the request path, and only then handed out again.
public final class SlotPool: Sendable {
    public let scheduler: SlotScheduler
    public let board: SlotBoard
    public let planner: PrestartPlanner
    private let backend: any SandboxBackend
    private let metrics: Metrics
    private let logger: Logger
    private let sleep: Sleeper

    public init(size: Int, maxQueue: Int, maxWaitMs: Int64, backend: any SandboxBackend, metrics: Metrics, logger: Logger,
                sleep: @escaping Sleeper = realSleep) {
        self.sleep = sleep
        self.scheduler = SlotScheduler(size: size, maxQueue: maxQueue, maxWaitMs: maxWaitMs, startFree: false, sleep: sleep)
        self.board = SlotBoard(size: size)
        self.planner = PrestartPlanner(size: size)
        self.backend = backend
        self.metrics = metrics
        self.logger = logger
    }

    public var size: Int { scheduler.size }

    /// Prepares every slot in the background; each serves requests as soon as it is ready.
    public func start() {
        for slot in 0..<size { refill(slot, resetting: false) }
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

    /// A run ended (however it ended): the slot is reset and prepared before its next use.
    public func finished(_ slot: Int) {
        refill(slot, resetting: true)
    }

    /// After a reload: takes each slot in turn (between requests, fairly) and prepares it again, so
    /// the pool moves over slot by slot. (A sandbox built before the reload is never used anyway.)
    public func recycleAll() {
        Task.detached { [self] in
            for _ in 0..<size {
                guard let slot = try? await scheduler.acquire(key: "\u{0}reload", retryHintMs: 0) else { return }
                refill(slot, resetting: true)
            }
        }
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
    private func refill(_ slot: Int, resetting: Bool) {
        board.set(slot, resetting ? .resetting : .preparing)
        Task.detached { [backend, board, scheduler, metrics, logger, sleep, planner] in
            var backoffMs: UInt64 = 100
            while true {
                let start = ContinuousClock.now
                do {
                    try await backend.prepare(slot: slot, prestart: planner.choose(for: slot))
                    if resetting {
                        let d = ContinuousClock.now - start
                        let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
                        board.recordReset(ms: seconds * 1000)
                        metrics.recordReset(seconds: seconds)
                    }
                    board.set(slot, .ready)
                    scheduler.release(slot)
                    return
                } catch is CancellationError {
                    return  // the backend is shutting down
                } catch {
                    board.set(slot, .broken)
                    board.recordFailure("\(error)")
                    logger.error("slot broken: cannot prepare its sandbox; retrying",
                                 metadata: ["slot": "\(slot)", "error": "\(error)", "retry_ms": "\(backoffMs)"])
                    try? await sleep(.milliseconds(backoffMs))
                    backoffMs = min(backoffMs * 2, 30_000)
                }
            }
        }
    }
}
