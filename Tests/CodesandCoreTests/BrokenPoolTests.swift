@testable import CodesandCore
import CodesandProtocol
import Logging
import Synchronization
import XCTest

/// A sleeper whose sleeps end only when the test wakes them (or they are cancelled): back-off waits
/// and the queue's max wait last as long as the test wants, without real time.
final class HeldSleeper: Sendable {
    private struct Pending {
        let id: Int
        let duration: Duration
        let continuation: CheckedContinuation<Void, any Error>
    }
    private let state = Mutex<(next: Int, pending: [Pending], requested: [Duration])>((0, [], []))

    var sleeper: Sleeper { { [self] d in try await self.sleep(d) } }

    /// Every duration asked for, in order.
    var requested: [Duration] { state.withLock { $0.requested } }
    /// Sleeps under way of at most `limit` (back-off waits, not the queue's 10 s max wait).
    func pending(upTo limit: Duration = .seconds(1)) -> Int { state.withLock { $0.pending.filter { $0.duration <= limit }.count } }

    /// Ends the oldest sleep under way of at most `limit`; false if there is none.
    @discardableResult
    func wakeOne(upTo limit: Duration = .seconds(1)) -> Bool {
        let woken: Pending? = state.withLock { s in
            s.pending.firstIndex { $0.duration <= limit }.map { s.pending.remove(at: $0) }
        }
        woken?.continuation.resume()
        return woken != nil
    }

    private func sleep(_ d: Duration) async throws {
        let id = state.withLock { s in
            s.next += 1
            s.requested.append(d)
            return s.next
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let cancelled = state.withLock { s in
                    if Task.isCancelled { return true }
                    s.pending.append(Pending(id: id, duration: d, continuation: c))
                    return false
                }
                if cancelled { c.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            let p: Pending? = state.withLock { s in s.pending.firstIndex { $0.id == id }.map { s.pending.remove(at: $0) } }
            p?.continuation.resume(throwing: CancellationError())
        }
    }
}

/// Waits (polling, real time) until `condition` holds; false after `seconds`. Only a guard against
/// hanging: the behaviour tested never needs more than a few scheduler turns.
func eventually(_ seconds: Double = 5, _ condition: () -> Bool) async -> Bool {
    let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while ContinuousClock.now < end {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(2))
    }
    return condition()
}

/// The outcome of `task`, or nil if it has none within `seconds` (then it is cancelled).
func outcome<T: Sendable>(of task: Task<T, any Error>, within seconds: Double = 5) async -> Result<T, any Error>? {
    let done = Mutex<Result<T, any Error>?>(nil)
    let watcher = Task { let r = await task.result; done.withLock { $0 = r } }
    let finished = await eventually(seconds) { done.withLock { $0 != nil } }
    if !finished { task.cancel() }
    _ = await watcher.value
    return finished ? done.withLock { $0 } : nil
}

/// A pool that cannot build sandboxes: requests fail at once with the cause (not "busy" after
/// max_wait), and reloads or a recovering slot end the back-off of the others.
final class BrokenPoolTests: XCTestCase {
    let logger = Logger(label: "test")

    func makePool(size: Int, backend: FakeBackend, sleeper: HeldSleeper) -> SlotPool {
        SlotPool(size: size, maxQueue: 8, maxWaitMs: 10_000, backend: backend, metrics: Metrics(), logger: logger,
                 sleep: sleeper.sleeper)
    }

    /// Lets each of `count` failing slots (`slots`, or all) through its first back-off (a single
    /// failure gets a quick retry before requests stop waiting), until each has failed twice.
    func failTwice(_ pool: SlotPool, _ sleeper: HeldSleeper, slots count: Int) async -> Bool {
        let failed = { pool.board.brokenSlots.filter { $0.failures >= 2 }.count }
        var woken = 0
        return await eventually {
            if woken < count, sleeper.wakeOne(upTo: .milliseconds(100)) { woken += 1 }
            return failed() == count && sleeper.pending() == count
        }
    }

    func test_with_every_slot_broken_a_request_fails_at_once_naming_the_cause() async throws {
        let backend = FakeBackend()
        backend.failing.withLock { $0 = Int.max }
        let sleeper = HeldSleeper()
        let pool = makePool(size: 2, backend: backend, sleeper: sleeper)
        pool.start()
        let broken = await failTwice(pool, sleeper, slots: 2)
        XCTAssertTrue(broken, "\(pool.board.brokenSlots)")
        // The queue's max wait never ends here (held): a request that waited for it would get no answer.
        let request = Task { try await pool.acquire(key: "bot", retryHintMs: 50) }
        guard let result = await outcome(of: request) else { return XCTFail("the request waited although no slot can be prepared") }
        XCTAssertThrowsError(try result.get()) { error in
            XCTAssertTrue(error is SlotScheduler.Unavailable, "\(error)")
            XCTAssertTrue("\(error)".contains("injected prepare failure"), "\(error)")
        }
        XCTAssertEqual(pool.board.brokenSlots.map(\.slot), [0, 1])
        XCTAssertEqual(pool.board.brokenSlots.map(\.error), ["injected prepare failure", "injected prepare failure"])
    }

    func test_requests_queued_when_the_last_slot_breaks_fail_at_once_not_at_max_wait() async throws {
        let backend = FakeBackend()
        let sleeper = HeldSleeper()
        let pool = makePool(size: 2, backend: backend, sleeper: sleeper)
        pool.start()
        let ready = await eventually { pool.board.counts["ready"] == 2 }
        XCTAssertTrue(ready)
        let a = try await pool.acquire(key: "x", retryHintMs: 1)
        let b = try await pool.acquire(key: "x", retryHintMs: 1)
        let waiters = (0..<3).map { i in Task { try await pool.acquire(key: "bot\(i)", retryHintMs: 50) } }
        let queued = await eventually { pool.scheduler.queued == 3 }
        XCTAssertTrue(queued)
        backend.failing.withLock { $0 = Int.max }  // the image is removed while both slots run
        pool.finished(a)
        let oneBroken = await failTwice(pool, sleeper, slots: 1)
        XCTAssertTrue(oneBroken, "\(pool.board.brokenSlots)")
        XCTAssertEqual(pool.scheduler.queued, 3, "one slot still runs and may come back: they keep waiting")
        pool.finished(b)
        let firstFailure = await eventually { pool.board.counts["broken"] == 2 }
        XCTAssertTrue(firstFailure)
        XCTAssertEqual(pool.scheduler.queued, 3, "one failure gets its quick retry before the requests give up")
        let retried = await eventually { sleeper.wakeOne(upTo: .milliseconds(100)) }  // its second failure
        XCTAssertTrue(retried)
        for waiter in waiters {
            guard let result = await outcome(of: waiter) else { return XCTFail("a queued request waited on for max_wait") }
            XCTAssertThrowsError(try result.get()) { XCTAssertTrue($0 is SlotScheduler.Unavailable, "\($0)") }
        }
        XCTAssertEqual(pool.scheduler.queued, 0)
    }

    func test_a_reload_retries_broken_slots_at_once_and_their_back_off_starts_over() async throws {
        let backend = FakeBackend()
        backend.failing.withLock { $0 = 5 }
        let sleeper = HeldSleeper()
        let pool = makePool(size: 1, backend: backend, sleeper: sleeper)
        pool.start()
        for _ in 0..<3 {  // three failures, each followed by its back-off (woken by hand here)
            let waiting = await eventually { sleeper.pending() == 1 }
            XCTAssertTrue(waiting)
            sleeper.wakeOne()
        }
        let fourth = await eventually { sleeper.pending() == 1 && pool.board.brokenSlots.first?.failures == 4 }
        XCTAssertTrue(fourth, "\(pool.board.brokenSlots)")
        // A reload before the cause is fixed: one attempt now (it fails), then the back-off starts over.
        pool.retryBroken()
        let fifth = await eventually { sleeper.pending() == 1 && pool.board.brokenSlots.first?.failures == 5 }
        XCTAssertTrue(fifth, "\(pool.board.brokenSlots)")
        XCTAssertEqual(sleeper.requested.filter { $0 <= .seconds(1) },
                       [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(100)])
        // The cause is fixed and the pool reloaded; the back-off is never allowed to end: only the reload brings it back.
        pool.retryBroken()
        let request = Task { try await pool.acquire(key: "bot", retryHintMs: 50) }
        guard let result = await outcome(of: request) else { return XCTFail("the reload did not end the back-off") }
        XCTAssertEqual(try result.get(), 0)
        XCTAssertEqual(pool.board.brokenSlots, [])
    }

    func test_a_slot_that_recovers_wakes_the_other_broken_slots() async throws {
        let backend = FakeBackend()
        backend.failing.withLock { $0 = 2 }  // each slot's first prepare fails
        let sleeper = HeldSleeper()
        let pool = makePool(size: 2, backend: backend, sleeper: sleeper)
        pool.start()
        let bothWaiting = await eventually { sleeper.pending() == 2 && pool.board.counts["broken"] == 2 }
        XCTAssertTrue(bothWaiting)
        sleeper.wakeOne()  // one slot's back-off ends; its prepare succeeds (the cause went away)
        let allReady = await eventually { pool.board.counts["ready"] == 2 }
        XCTAssertTrue(allReady, "the other slot still waits out its back-off: \(pool.board.counts)")
        XCTAssertEqual(sleeper.pending(), 0)
    }

    func test_status_and_metrics_say_why_no_run_can_be_served() async throws {
        var config = try CodesandConfig.defaults()
        config.poolSize = 2
        config.maxRunning = 2  // all of the pool at once
        let python = try XCTUnwrap(config.languages.first { $0.name == "python3" })
        let backend = FakeBackend()
        backend.failing.withLock { $0 = Int.max }
        let service = RunService(config: config, languages: LanguageTable(entries: [.init(spec: python, version: "3")]),
                                 backend: backend, version: "test", logger: logger)
        service.start()
        let broken = await eventually { service.status().slots["broken"] == 2 }
        XCTAssertTrue(broken)
        let run = Task { try await service.run(RunParams(language: "python3", code: "print(1)"), peer: PeerInfo(pid: 1, uid: 0, gid: 0)) }
        guard let result = await outcome(of: run) else { return XCTFail("the run waited for max_wait (10 s)") }
        XCTAssertThrowsError(try result.get()) { error in
            let rpc = error as? RPCError
            XCTAssertEqual(rpc?.code, RPCErrorCode.internalError.rawValue, "\(error)")
            XCTAssertTrue(rpc?.message.contains("injected prepare failure") == true, "\(error)")
            XCTAssertTrue(rpc?.message.contains("pool reload") == true, "says what to do: \(error)")
        }
        let status = service.status()
        XCTAssertTrue(status.poolError?.contains("injected prepare failure") == true, "\(status)")
        XCTAssertEqual(status.brokenSlots?.map(\.slot), [0, 1])
        XCTAssertEqual(status.brokenSlots?.allSatisfy { $0.error == "injected prepare failure" && $0.failures >= 1 }, true)
        XCTAssertTrue(service.metricsText().contains("codesand_pool_unavailable 1\n"))
        service.stop()
    }
}
