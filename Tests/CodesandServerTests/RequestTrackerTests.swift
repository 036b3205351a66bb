@testable import CodesandServer
import Synchronization
import XCTest

/// The tracker's awaitable idle, which the daemon's graceful stop waits on instead of polling.
final class RequestTrackerTests: XCTestCase {
    /// A request in flight, as ConnectionHandler registers one; ended by hand here.
    private func begin(_ tracker: RequestTracker) -> UInt64 {
        var id: UInt64 = 0
        tracker.begin { id = $0; return Task {} }
        return id
    }

    /// Set by a waiter once it returned.
    private final class Flag: Sendable {
        private let value = Mutex(false)
        func set() { value.withLock { $0 = true } }
        var isSet: Bool { value.withLock { $0 } }
    }

    func test_idle_at_once_when_nothing_is_in_flight() async {
        let idle = await RequestTracker().waitUntilIdle()
        XCTAssertTrue(idle)
    }

    func test_idle_resumes_when_the_last_request_ends_not_before() async throws {
        let tracker = RequestTracker()
        let a = begin(tracker), b = begin(tracker)
        let done = Flag()
        let waiter = Task {
            let idle = await tracker.waitUntilIdle()
            done.set()
            return idle
        }
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertFalse(done.isSet, "idle with two requests in flight")
        tracker.end(a)
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertFalse(done.isSet, "idle with one request in flight")
        tracker.end(b)
        let idle = await waiter.value
        XCTAssertTrue(idle)
    }

    func test_timeout_passes_while_a_request_stays_in_flight() async {
        let tracker = RequestTracker()
        _ = begin(tracker)
        let start = ContinuousClock.now
        let idle = await tracker.waitUntilIdle(timeout: .milliseconds(200))
        let waited = ContinuousClock.now - start
        XCTAssertFalse(idle)
        XCTAssertGreaterThanOrEqual(waited, .milliseconds(200))
        XCTAssertLessThan(waited, .seconds(5))
        XCTAssertEqual(tracker.inFlight, 1)
    }

    func test_timeout_returns_true_as_soon_as_idle_not_at_the_timeout() async {
        let tracker = RequestTracker()
        let id = begin(tracker)
        Task {
            try await Task.sleep(for: .milliseconds(100))
            tracker.end(id)
        }
        let start = ContinuousClock.now
        let idle = await tracker.waitUntilIdle(timeout: .seconds(30))
        XCTAssertTrue(idle)
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(5), "waited for the timeout, not for idle")
    }

    func test_every_concurrent_waiter_resumes_at_idle() async {
        let tracker = RequestTracker()
        let ids = (0..<8).map { _ in begin(tracker) }
        let waiters = (0..<100).map { i in
            Task { i.isMultiple(of: 2) ? await tracker.waitUntilIdle() : await tracker.waitUntilIdle(timeout: .seconds(60)) }
        }
        try? await Task.sleep(for: .milliseconds(50))
        await withTaskGroup(of: Void.self) { group in
            for id in ids { group.addTask { tracker.end(id) } }
        }
        for w in waiters {
            let idle = await w.value
            XCTAssertTrue(idle)
        }
    }

    func test_a_cancelled_waiter_returns_false_and_a_later_idle_is_harmless() async throws {
        let tracker = RequestTracker()
        let id = begin(tracker)
        let waiter = Task { await tracker.waitUntilIdle() }
        let other = Task { await tracker.waitUntilIdle() }
        try await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        let cancelled = await waiter.value
        XCTAssertFalse(cancelled)
        tracker.end(id)  // resumes `other` only: the cancelled waiter's continuation is gone
        let idle = await other.value
        XCTAssertTrue(idle)
    }

    func test_a_task_cancelled_before_it_waits_returns_false_at_once() async throws {
        let tracker = RequestTracker()
        let id = begin(tracker)
        let done = Flag()
        let waiter = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            let idle = await tracker.waitUntilIdle()
            done.set()
            return idle
        }
        for _ in 0..<500 where !done.isSet { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertTrue(done.isSet, "a cancelled task waited for idle")
        tracker.end(id)  // releases it if it did wait
        let idle = await waiter.value
        XCTAssertFalse(idle)
    }

    /// Ends racing waits and cancels: every waiter returns (no lost wake-up, no double resume,
    /// which would trap), true unless it was cancelled before idle.
    func test_ends_racing_waits_and_cancels_lose_no_waiter() async {
        let tracker = RequestTracker()
        for round in 0..<300 {
            let id = begin(tracker)
            let waiter = Task { await tracker.waitUntilIdle() }
            let cancelled = Task { await tracker.waitUntilIdle() }
            if round.isMultiple(of: 2) { await Task.yield() }
            async let ending: Void = tracker.end(id)
            cancelled.cancel()
            await ending
            let idle = await waiter.value
            XCTAssertTrue(idle, "round \(round)")
            _ = await cancelled.value
        }
        XCTAssertEqual(tracker.inFlight, 0)
    }
}
