@testable import CodesandCore
import CodesandProtocol
import Logging
import Synchronization
import XCTest

/// A backend whose prepares fail while `failing` is set, and whose runs return at once. Its
/// "system" has the programs in `installed`; a probe answers `probeAnswers[argv]`.
final class FakeBackend: SandboxBackend {
    let name = "fake"
    let cgroupVersion = "v2"
    let failing = Mutex(0)          // prepares still to fail
    let prepares = Mutex([Int]())   // slot of each successful prepare, in order
    let installed = Mutex<Set<String>?>(nil)  // nil: every program
    let probeAnswers = Mutex([[String]: String]())
    let generations = Mutex([CodesandConfig]())  // configs taken by addGeneration, in order
    let refuseConfig = Mutex<String?>(nil)  // addGeneration throws this
    let stopped = Mutex(false)

    func addGeneration(_ config: CodesandConfig) async throws -> Int {
        if let why = refuseConfig.withLock({ $0 }) { throw SandboxError(why) }
        return generations.withLock { $0.append(config); return $0.count }
    }
    func isExecutable(_ program: String) async -> Bool { installed.withLock { $0?.contains(program) ?? true } }
    func probe(_ argv: [String], env: [String]) async -> String? { probeAnswers.withLock { $0[argv] } }
    func shutdown() async { stopped.withLock { $0 = true } }

    func prepare(slot: Int, prestart: PrestartSpec?) async throws {
        let fail = failing.withLock { n in defer { if n > 0 { n -= 1 } }; return n > 0 }
        if fail { throw SandboxError("injected prepare failure") }
        prepares.withLock { $0.append(slot) }
    }

    let runGenerations = Mutex([Int]())  // SandboxJob.generation of each run, in order

    func run(_ job: SandboxJob, slot: Int, onOutput: (@Sendable (OutputChunk) -> Void)?) async throws -> SandboxOutcome {
        runGenerations.withLock { $0.append(job.generation) }
        return SandboxOutcome(waitStatus: 0, timedOut: false, oomKilled: false, output: OutputCollector(maxBytes: 10, maxLines: 10),
                       wallNs: 1, cpuNs: 1, memoryPeakBytes: 1)
    }
}

/// Records every requested sleep and returns at once: backoff and timeouts without real time.
final class RecordingSleeper: Sendable {
    let slept = Mutex([Duration]())
    var sleeper: Sleeper {
        { [self] d in
            self.slept.withLock { $0.append(d) }
            // Long waits (the queue's max wait) stay real; they never end within a test.
            if d >= .seconds(60) { try await Task.sleep(for: d) } else { await Task.yield() }
        }
    }
}

final class SlotPoolTests: XCTestCase {
    let logger = Logger(label: "test")

    func test_slots_are_handed_out_only_once_prepared() async throws {
        let backend = FakeBackend()
        let pool = SlotPool(size: 2, maxQueue: 4, maxWaitMs: 60_000, backend: backend, metrics: Metrics(), logger: logger)
        XCTAssertEqual(pool.scheduler.available, 0)
        pool.start()
        let ready = await pool.waitUntilReady(timeout: .seconds(5))
        XCTAssertTrue(ready)
        XCTAssertEqual(pool.scheduler.available, 2)
        XCTAssertEqual(Set(backend.prepares.withLock { $0 }), [0, 1])
    }

    func test_a_used_slot_is_prepared_again_before_it_is_handed_out() async throws {
        let backend = FakeBackend()
        let pool = SlotPool(size: 1, maxQueue: 4, maxWaitMs: 60_000, backend: backend, metrics: Metrics(), logger: logger)
        pool.start()
        _ = await pool.waitUntilReady(timeout: .seconds(5))
        let slot = try await pool.acquire(key: "a", retryHintMs: 1)
        XCTAssertEqual(pool.board.counts["busy"], 1)
        pool.finished(slot)
        let again = try await pool.acquire(key: "a", retryHintMs: 1)
        XCTAssertEqual(again, slot)
        XCTAssertEqual(backend.prepares.withLock { $0 }, [0, 0], "prepared at start and again after the run")
    }

    func test_a_failing_prepare_marks_the_slot_broken_retries_with_backoff_and_recovers() async throws {
        let backend = FakeBackend()
        backend.failing.withLock { $0 = 3 }
        let sleeper = RecordingSleeper()
        let pool = SlotPool(size: 1, maxQueue: 4, maxWaitMs: 60_000, backend: backend, metrics: Metrics(), logger: logger,
                            sleep: sleeper.sleeper)
        pool.start()
        let ready = await pool.waitUntilReady(timeout: .seconds(5))  // through the failures and their back-off
        XCTAssertTrue(ready)
        let slot = try await pool.acquire(key: "a", retryHintMs: 1)
        XCTAssertEqual(slot, 0)
        XCTAssertEqual(pool.board.failures.count, 3)
        let backoff = sleeper.slept.withLock { $0 }.filter { $0 < .seconds(60) }
        XCTAssertEqual(backoff, [.milliseconds(100), .milliseconds(200), .milliseconds(400)])
    }

    func test_a_broken_slot_is_never_handed_out() async throws {
        let backend = FakeBackend()
        backend.failing.withLock { $0 = Int.max }
        let sleeper = RecordingSleeper()
        let pool = SlotPool(size: 1, maxQueue: 4, maxWaitMs: 60_000, backend: backend, metrics: Metrics(), logger: logger,
                            sleep: sleeper.sleeper)
        pool.start()
        while pool.board.failures.count < 5 { await Task.yield() }
        XCTAssertEqual(pool.scheduler.available, 0)
        do {
            _ = try await pool.acquire(key: "a", retryHintMs: 1)
            XCTFail("a broken slot was handed out")
        } catch {
            XCTAssertTrue(error is SlotScheduler.Unavailable, "\(error)")
        }
        backend.failing.withLock { $0 = 0 }  // the cause goes away
        let ready = await pool.waitUntilReady(timeout: .seconds(5))
        XCTAssertTrue(ready)
        let slot = try await pool.acquire(key: "a", retryHintMs: 1)
        XCTAssertEqual(slot, 0)
        XCTAssertEqual(pool.board.counts["busy"], 1)
    }

    func test_waiting_past_max_wait_is_busy_without_real_time() async throws {
        let sleeper = RecordingSleeper()
        let s = SlotScheduler(size: 1, maxQueue: 5, maxWaitMs: 10_000, sleep: sleeper.sleeper)
        _ = try await s.acquire(key: "x", retryHintMs: 1)
        do {
            _ = try await s.acquire(key: "y", retryHintMs: 77)
            XCTFail("expected busy")
        } catch let busy as SlotScheduler.Busy {
            XCTAssertEqual(busy.retryAfterMs, 77)
        }
        XCTAssertTrue(sleeper.slept.withLock { $0 }.contains(.milliseconds(10_000)))
    }

    func test_stop_fails_waiters_and_later_acquires() async throws {
        let s = SlotScheduler(size: 1, maxQueue: 5, maxWaitMs: 60_000)
        _ = try await s.acquire(key: "x", retryHintMs: 1)
        let waiter = Task { try await s.acquire(key: "y", retryHintMs: 1) }
        while s.queued < 1 { await Task.yield() }
        s.stop()
        do { _ = try await waiter.value; XCTFail() } catch is SlotScheduler.Stopped {}
        do { _ = try await s.acquire(key: "z", retryHintMs: 1); XCTFail() } catch is SlotScheduler.Stopped {}
    }
}
