@testable import CodesandCore
import CodesandProtocol
import Logging
import Synchronization
import XCTest

/// A backend whose slots live on cluster members, and whose sandboxes can vanish (a member gone).
final class MemberBackend: SandboxBackend {
    let name = "fake-cluster"
    let cgroupVersion = "v2"
    let members: [String?]
    let events = Mutex<(any SlotEvents)?>(nil)
    /// Slots whose machine is gone: prepares fail, runs throw SandboxUnavailable.
    let gone = Mutex(Set<Int>())
    let runsBySlot = Mutex([Int]())

    init(members: [String?]) { self.members = members }

    func slotMembers() -> [String?]? { members }
    func observe(_ events: any SlotEvents) { self.events.withLock { $0 = events } }
    func prepare(slot: Int, prestart: PrestartSpec?) async throws {
        if gone.withLock({ $0.contains(slot) }) { throw SandboxError("member of slot \(slot) is gone") }
    }
    func run(_ job: SandboxJob, slot: Int, onOutput: (@Sendable (OutputChunk) -> Void)?) async throws -> SandboxOutcome {
        if gone.withLock({ $0.contains(slot) }) { throw SandboxUnavailable("member of slot \(slot) is gone") }
        runsBySlot.withLock { $0.append(slot) }
        return SandboxOutcome(waitStatus: 0, timedOut: false, oomKilled: false, output: OutputCollector(maxBytes: 10, maxLines: 10),
                              wallNs: 1, cpuNs: 1, memoryPeakBytes: 1)
    }
    func addGeneration(_ config: CodesandConfig) async throws -> Int { 0 }
    func isExecutable(_ program: String) async -> Bool { true }
    func probe(_ argv: [String], env: [String]) async -> String? { nil }
    func shutdown() async {}
}

/// `status`'s slots per member, a member's ready slots taken out when it goes, and runs that a
/// slot could not take going to another slot.
final class MemberStatusTests: XCTestCase {
    let logger = Logger(label: "test")

    func test_the_board_counts_slots_per_group_with_every_state() {
        let board = SlotBoard(size: 4)
        board.set(0, .ready)
        board.set(1, .busy)
        board.set(2, .ready)
        board.markBroken(BrokenSlot(slot: 3, error: "x", failures: 1, retryAt: .now))
        let counts = board.counts(by: ["m1", "m2", "m1", nil])
        XCTAssertEqual(counts["m1"], ["ready": 2, "busy": 0, "preparing": 0, "resetting": 0, "broken": 0])
        XCTAssertEqual(counts["m2"], ["ready": 0, "busy": 1, "preparing": 0, "resetting": 0, "broken": 0])
        XCTAssertEqual(counts.count, 2, "a slot not placed yet is not counted")
    }

    func service(_ backend: MemberBackend, size: Int) throws -> RunService {
        var config = try CodesandConfig.defaults()
        config.poolSize = size
        config.maxRunning = size  // all of the pool at once
        let sh = try XCTUnwrap(config.languages.first { $0.name == "bash" })
        return RunService(config: config, languages: LanguageTable(entries: [.init(spec: sh, version: "5")]),
                          backend: backend, version: "test", logger: logger)
    }

    func test_status_shows_members_only_for_a_backend_that_has_them() async throws {
        let backend = MemberBackend(members: ["m1", "m2", "m1"])
        let s = try service(backend, size: 3)
        s.start()
        let ready = await eventually { s.status().slots["ready"] == 3 }
        XCTAssertTrue(ready)
        XCTAssertEqual(s.status().members?["m1"]?["ready"], 2)
        XCTAssertEqual(s.status().members?["m2"]?["ready"], 1)
        let json = String(decoding: try JSONEncoder().encode(s.status()), as: UTF8.self)
        XCTAssertTrue(json.contains("\"members\":{"), json)

        let native = try service(MemberBackend(members: []), size: 1)
        XCTAssertEqual(native.status().members, [:])
        var config = try CodesandConfig.defaults()
        config.poolSize = 1
        config.maxRunning = 1  // all of the pool at once
        let plain = RunService(config: config, languages: LanguageTable(entries: []), backend: FakeBackend(), version: "t", logger: logger)
        XCTAssertNil(plain.status().members, "a backend on one machine: no members in status")
        XCTAssertFalse(String(decoding: try JSONEncoder().encode(plain.status()), as: UTF8.self).contains("members"))
    }

    func test_a_lost_ready_slot_is_taken_out_broken_and_comes_back_when_its_member_does() async throws {
        let backend = MemberBackend(members: ["m1", "m2"])
        let s = try service(backend, size: 2)
        s.start()
        let ready = await eventually { s.status().slots["ready"] == 2 }
        XCTAssertTrue(ready)
        backend.gone.withLock { $0 = [1] }
        let events = try XCTUnwrap(backend.events.withLock { $0 }, "the pool hands itself to the backend at start")
        events.sandboxLost(slot: 1, reason: "member m2 does not answer")
        let broken = await eventually { s.status().members?["m2"]?["broken"] == 1 }
        XCTAssertTrue(broken, "\(String(describing: s.status().members))")
        XCTAssertEqual(s.status().members?["m1"]?["ready"], 1)
        XCTAssertEqual(s.pool.scheduler.available, 1, "only m1's slot can be handed out")
        for i in 0..<4 {
            let r = try await s.run(RunParams(language: "bash", code: "echo \(i)"), peer: PeerInfo(pid: 1, uid: 0, gid: 0))
            XCTAssertEqual(r.status, .ok)
        }
        XCTAssertEqual(Set(backend.runsBySlot.withLock { $0 }), [0])
        backend.gone.withLock { $0 = [] }
        events.retryBroken()  // the member answers again
        let back = await eventually { s.status().members?["m2"]?["ready"] == 1 }
        XCTAssertTrue(back, "\(String(describing: s.status().members))")
    }

    func test_a_run_its_slot_cannot_take_goes_to_another_slot() async throws {
        let backend = MemberBackend(members: ["m1", "m2"])
        let s = try service(backend, size: 2)
        s.start()
        let ready = await eventually { s.status().slots["ready"] == 2 }
        XCTAssertTrue(ready)
        backend.gone.withLock { $0 = [0, 1] }
        // Both slots gone but not known lost yet: a run tries each, then fails naming the cause.
        do {
            _ = try await s.run(RunParams(language: "bash", code: "echo x"), peer: PeerInfo(pid: 1, uid: 0, gid: 0))
            XCTFail("a run with no slot able to take it succeeded")
        } catch {
            XCTAssertEqual(error.code, RPCErrorCode.internalError.rawValue)
            XCTAssertTrue(error.message.contains("is gone"), error.message)
        }
        backend.gone.withLock { $0 = [] }
        s.pool.retryBroken()
        let back = await eventually { s.status().slots["ready"] == 2 }
        XCTAssertTrue(back)
        backend.gone.withLock { $0 = [1] }   // slot 1's member goes; the first run may get slot 1
        for _ in 0..<3 {
            let r = try await s.run(RunParams(language: "bash", code: "echo y"), peer: PeerInfo(pid: 1, uid: 0, gid: 0))
            XCTAssertEqual(r.status, .ok)
            _ = await eventually { s.pool.scheduler.available >= 1 }
        }
        XCTAssertEqual(Set(backend.runsBySlot.withLock { $0 }), [0])
    }
}
