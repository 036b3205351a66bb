@testable import CodesandCore
import XCTest

final class SlotSchedulerTests: XCTestCase {
    func test_free_slots_are_handed_out_at_once() async throws {
        let s = SlotScheduler(size: 2, maxQueue: 4, maxWaitMs: 1000)
        let a = try await s.acquire(key: "x", retryHintMs: 1)
        let b = try await s.acquire(key: "x", retryHintMs: 1)
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(s.available, 0)
    }

    func test_an_idle_runs_turn_goes_to_a_waiter_and_its_end_does_not_give_it_twice() async throws {
        let s = SlotScheduler(size: 3, maxRunning: 1, maxQueue: 4, maxWaitMs: 5000)
        let sleeper = try await s.acquire(key: "a", retryHintMs: 1)
        let waiter = Task { try await s.acquire(key: "b", retryHintMs: 1) }
        while s.queued == 0 { await Task.yield() }
        let turn = RunTurn(scheduler: s)
        turn.runIsIdle(true)
        turn.runIsIdle(true)  // said twice, given once
        let second = try await waiter.value
        XCTAssertNotEqual(second, sleeper)
        // A third request waits: the second holds the one turn.
        let third = Task { try await s.acquire(key: "c", retryHintMs: 1) }
        while s.queued == 0 { await Task.yield() }
        XCTAssertFalse(turn.end(), "given back: its end gives nothing")
        s.runEnded()  // the second run's end
        _ = try await third.value
    }

    func test_a_run_busy_again_takes_a_turn_back() async throws {
        let s = SlotScheduler(size: 3, maxRunning: 1, maxQueue: 4, maxWaitMs: 5000)
        _ = try await s.acquire(key: "a", retryHintMs: 1)
        let turn = RunTurn(scheduler: s)
        turn.runIsIdle(true)
        turn.runIsIdle(false)
        let waiter = Task { try await s.acquire(key: "b", retryHintMs: 1) }
        while s.queued == 0 { await Task.yield() }
        XCTAssertTrue(turn.end(), "it holds a turn again: its end gives it")
        s.runEnded()
        _ = try await waiter.value
    }

    func test_a_full_queue_answers_busy_with_a_retry_hint() async throws {
        let s = SlotScheduler(size: 1, maxQueue: 0, maxWaitMs: 1000)
        _ = try await s.acquire(key: "x", retryHintMs: 1)
        do {
            _ = try await s.acquire(key: "x", retryHintMs: 250)
            XCTFail("expected busy")
        } catch let busy as SlotScheduler.Busy {
            XCTAssertEqual(busy.retryAfterMs, 250)
        }
    }

    /// A client with many queued requests and another with one: the second is served next, not last.
    func test_waiters_are_served_round_robin_across_clients() async throws {
        let s = SlotScheduler(size: 1, maxQueue: 10, maxWaitMs: 5000)
        let first = try await s.acquire(key: "flood", retryHintMs: 1)
        let order = OrderLog()
        var tasks: [Task<Void, Error>] = []
        for i in 0..<3 {
            tasks.append(Task { let slot = try await s.acquire(key: "flood", retryHintMs: 1); await order.add("flood\(i)"); s.runEnded(); s.release(slot) })
            while s.queued < i + 1 { await Task.yield() }
        }
        tasks.append(Task { let slot = try await s.acquire(key: "quiet", retryHintMs: 1); await order.add("quiet"); s.runEnded(); s.release(slot) })
        while s.queued < 4 { await Task.yield() }
        s.runEnded()
        s.release(first)
        for t in tasks { try await t.value }
        let seen = await order.items
        XCTAssertEqual(seen.firstIndex(of: "quiet"), 1, "\(seen)")
    }

    func test_a_cancelled_waiter_leaves_the_queue() async throws {
        let s = SlotScheduler(size: 1, maxQueue: 5, maxWaitMs: 5000)
        _ = try await s.acquire(key: "x", retryHintMs: 1)
        let t = Task { try await s.acquire(key: "y", retryHintMs: 1) }
        while s.queued < 1 { await Task.yield() }
        t.cancel()
        do {
            _ = try await t.value
            XCTFail("expected cancellation")
        } catch is CancellationError {}
        XCTAssertEqual(s.queued, 0)
    }

    /// Two slots, one broken: the other may still come back, so a request waits; when the other
    /// breaks too, nothing can come back and the waiter fails at once with the cause.
    func test_a_waiter_fails_when_the_last_slot_that_could_come_back_breaks() async throws {
        let s = SlotScheduler(size: 2, maxQueue: 5, maxWaitMs: 60_000, startFree: false)
        s.markBroken(0, cause: "image gone")
        let waiter = Task { try await s.acquire(key: "bot", retryHintMs: 1) }
        while s.queued < 1 { await Task.yield() }
        XCTAssertNil(s.unavailable)
        s.markBroken(1, cause: "image still gone")
        do {
            _ = try await waiter.value
            XCTFail("expected unavailable")
        } catch let e as SlotScheduler.Unavailable {
            XCTAssertEqual(e.cause, "image still gone")
            XCTAssertEqual(e.brokenSlots, 2)
        }
        XCTAssertEqual(s.queued, 0)
    }

    /// A broken slot being prepared again (a reload): requests wait for the attempt, and get the
    /// slot when it succeeds.
    func test_a_retried_slot_lets_requests_wait_for_the_attempt() async throws {
        let s = SlotScheduler(size: 1, maxQueue: 5, maxWaitMs: 60_000, startFree: false)
        s.markBroken(0, cause: "image gone")
        do { _ = try await s.acquire(key: "bot", retryHintMs: 1); XCTFail() } catch is SlotScheduler.Unavailable {}
        s.markRetrying(0)
        XCTAssertNil(s.unavailable)
        let waiter = Task { try await s.acquire(key: "bot", retryHintMs: 1) }
        while s.queued < 1 { await Task.yield() }
        s.release(0)
        let slot = try await waiter.value
        XCTAssertEqual(slot, 0)
    }
}

final class SpareSlotTests: XCTestCase {
    /// Three slots, one run at once: while it runs, the spares wait prepared and a request waits
    /// for its turn; when the run ends, the request gets a spare at once, not the slot that ran
    /// (still being reset); that slot, once released, is free for the next.
    func test_a_run_ending_hands_its_turn_to_a_prepared_spare() async throws {
        let s = SlotScheduler(size: 3, maxRunning: 1, maxQueue: 5, maxWaitMs: 60_000)
        let first = try await s.acquire(key: "a", retryHintMs: 1)
        XCTAssertEqual(s.available, 2, "two spares prepared")
        let waiter = Task { try await s.acquire(key: "b", retryHintMs: 1) }
        for _ in 0..<10_000 where s.queued < 1 { await Task.yield() }
        XCTAssertEqual(s.queued, 1, "waits: one run at once")
        s.runEnded()
        let second = try await waiter.value
        XCTAssertNotEqual(second, first, "the spare, not the slot being reset")
        XCTAssertEqual(s.available, 1)
        // The first slot comes back from its reset while the second runs: free, not handed out.
        s.release(first)
        XCTAssertEqual(s.available, 2)
        let third = Task { try await s.acquire(key: "c", retryHintMs: 1) }
        for _ in 0..<10_000 where s.queued < 1 { await Task.yield() }
        XCTAssertEqual(s.queued, 1, "one run at once")
        s.runEnded()
        _ = try await third.value
        XCTAssertEqual(s.queued, 0)
    }

    func test_running_is_at_most_the_slots() {
        XCTAssertEqual(SlotScheduler(size: 2, maxRunning: 5, maxQueue: 1, maxWaitMs: 1).maxRunning, 2)
        XCTAssertEqual(SlotScheduler(size: 4, maxQueue: 1, maxWaitMs: 1).maxRunning, 4)
    }
}

actor OrderLog {
    var items: [String] = []
    func add(_ s: String) { items.append(s) }
}
