import CodesandCore
import CodesandProtocol
import Foundation
import Logging
import Synchronization
import XCTest

@testable import CodesandLXD

/// The pool spread over a real two-member LXD cluster on loopback (scripts/lxd-test-env
/// start-cluster): containers on both members, `status` per member, member m2 stopped under load
/// (the other keeps serving) and started again (its slots come back).
final class LXDClusterTests: XCTestCase {
    nonisolated(unsafe) static var lxd: Result<PrivateLXD, any Error>?
    override class func setUp() { lxd = Result { try PrivateLXD.start(cluster: true) } }
    override class func tearDown() { if case .success(let l) = lxd { l.stop() } }

    func cluster() throws -> PrivateLXD {
        guard let lxd = Self.lxd else { throw XCTSkip("no LXD") }
        return try lxd.get()
    }

    let peer = PeerInfo(pid: getpid(), uid: 0, gid: 0)

    /// A RunService on the cluster, every slot ready; its containers are deleted after the test.
    func service(_ prefix: String, members: [String], pool: Int) async throws -> (RunService, LXDBackend) {
        var cfg = try LXDFixture.config(socket: try cluster().socket, prefix: prefix)
        cfg.poolSize = pool
        cfg.maxRunning = pool  // all of the pool at once
        cfg.queueMaxWaitMs = 20_000
        cfg.sandbox.lxd.members = members
        let logger = Logger(label: "lxdtest")
        let backend = try LXDBackend(config: cfg.sandbox, poolSize: pool, defaultLimits: cfg.defaultLimits, logger: logger)
        let languages = await LanguageDetector.detect(cfg.languages, backend: backend, config: cfg.sandbox, logger: logger)
        let service = RunService(config: cfg, languages: languages, backend: backend, version: "test", logger: logger)
        addTeardownBlock {
            service.stop()
            await backend.shutdown()
            for slot in 0...pool { try? await backend.pool.delete(backend.pool.name(slot)) }
        }
        service.start()
        let ready = await service.waitUntilReady(timeout: .seconds(90))
        XCTAssertTrue(ready, "\(service.status().slots) \(service.status().brokenSlots ?? [])")
        return (service, backend)
    }

    func location(_ backend: LXDBackend, _ name: String) async throws -> String? {
        try await backend.client.call(.GET, LXDPath.instance(name)).metadata.objectValue?["location"]?.stringValue
    }

    func waitFor(_ seconds: Double, _ condition: () -> Bool) async -> Bool {
        let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while ContinuousClock.now < end {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return condition()
    }

    func test_a_member_going_away_takes_only_its_slots_and_they_come_back_with_it() async throws {
        let lxd = try cluster()
        let (s, backend) = try await service("t-cl", members: ["m1", "m2"], pool: 4)
        for slot in 0..<4 {
            let at = try await location(backend, "t-cl-\(slot)")
            XCTAssertEqual(at, slot % 2 == 0 ? "m1" : "m2", "slot \(slot)")
        }
        XCTAssertEqual(s.status().members?["m1"]?["ready"], 2)
        XCTAssertEqual(s.status().members?["m2"]?["ready"], 2)

        // Load: two clients run back to back while m2 goes away; each answer is kept with when its run started.
        let log = LoadLog()
        let load = Task { [s, peer] in
            await withTaskGroup(of: Void.self) { group in
                for client in 0..<2 {
                    group.addTask {
                        var i = 0
                        while !log.done.load(ordering: .relaxed) {
                            i += 1
                            let started = ContinuousClock.now
                            let what: (Bool, String)
                            do {
                                let r = try await s.run(RunParams(language: "sh", code: "echo \(client)-\(i)"), peer: peer)
                                what = (r.stdout == "\(client)-\(i)\n" && r.status == .ok, r.stdout)
                            } catch {
                                what = (false, "\(error)")
                            }
                            log.answers.withLock { $0.append((started, what.0, what.1)) }
                        }
                    }
                }
            }
        }
        try await Task.sleep(for: .seconds(2))
        try lxd.stopMember()
        let stopped = ContinuousClock.now
        try await Task.sleep(for: .seconds(4))
        log.done.store(true, ordering: .relaxed)
        _ = await load.value
        let after = log.answers.withLock { a in a.filter { $0.started > stopped } }
        XCTAssertGreaterThan(after.count, 2, "runs went on after m2 stopped")
        XCTAssertEqual(after.filter { !$0.ok }.map(\.what), [], "runs after m2 was gone fail")

        // Each run is answered right, and soon, with m2 gone; its slots are out (broken), m1's serve.
        for i in 0..<10 {
            let start = ContinuousClock.now
            let r = try await s.run(RunParams(language: "sh", code: "echo \(i); hostname"), peer: peer)
            XCTAssertEqual(r.stdout.split(separator: "\n").first, "\(i)")
            XCTAssertTrue(r.stdout.hasSuffix("t-cl-0\n") || r.stdout.hasSuffix("t-cl-2\n"), "ran on m1: \(r.stdout)")
            XCTAssertLessThan(ContinuousClock.now - start, .seconds(5))
        }
        let out = await waitFor(10) { (s.status().members?["m2"]?["ready"] ?? -1) == 0 && (s.status().members?["m2"]?["busy"] ?? -1) == 0 }
        XCTAssertTrue(out, "m2's slots are not handed out: \(String(describing: s.status().members))")
        let m1Serves = await waitFor(10) { (s.status().members?["m1"]?["ready"] ?? 0) == 2 }
        XCTAssertTrue(m1Serves, "m1's slots are ready after their restores: \(String(describing: s.status().members))")
        XCTAssertTrue(s.status().brokenSlots?.contains { $0.error.contains("m2") } == true, "\(s.status().brokenSlots ?? [])")

        // m2 returns: its slots are ready again (its broken slots retry as soon as it answers).
        try lxd.startMember()
        let back = await waitFor(60) { s.status().members?["m2"]?["ready"] == 2 }
        XCTAssertTrue(back, "\(String(describing: s.status().members)) \(s.status().brokenSlots ?? [])")
        let r = try await s.run(RunParams(language: "sh", code: "echo back"), peer: peer)
        XCTAssertEqual(r.stdout, "back\n")
    }

    func test_adoption_keeps_containers_on_their_slots_member_and_the_cluster_can_place_them() async throws {
        // The cluster's own placement: where each container went is read back, and shown per member.
        let (own, ownBackend) = try await service("t-own", members: [], pool: 2)
        let placed = try XCTUnwrap(ownBackend.slotMembers())
        for slot in 0..<2 {
            let at = try await location(ownBackend, "t-own-\(slot)")
            XCTAssertEqual(placed[slot], at)
        }
        XCTAssertEqual(own.status().members?.values.reduce(0) { $0 + ($1["ready"] ?? 0) }, 2)

        // A daemon with m1, m2 places slot 0 on m1; the next daemon says m2, m1: the container of
        // slot 0 is replaced by one on m2, slot 1's likewise on m1.
        var cfg = try LXDFixture.config(socket: try cluster().socket, prefix: "t-move")
        cfg.sandbox.lxd.members = ["m1", "m2"]
        let first = try LXDBackend(config: cfg.sandbox, poolSize: 2, defaultLimits: cfg.defaultLimits, logger: Logger(label: "lxdtest"))
        try await first.prepare(slot: 0, prestart: nil)
        let before = try await location(first, "t-move-0")
        XCTAssertEqual(before, "m1")
        await first.shutdown()
        cfg.sandbox.lxd.members = ["m2", "m1"]
        let second = try LXDBackend(config: cfg.sandbox, poolSize: 2, defaultLimits: cfg.defaultLimits, logger: Logger(label: "lxdtest"))
        addTeardownBlock {
            await second.shutdown()
            for slot in 0...2 { try? await second.pool.delete(second.pool.name(slot)) }
        }
        try await second.prepare(slot: 0, prestart: nil)
        let after = try await location(second, "t-move-0")
        XCTAssertEqual(after, "m2")
        XCTAssertEqual(second.slotMembers()?.first, "m2")
        let out = try await second.run(try LXDFixture.job("hostname"), slot: 0, onOutput: nil).run?.stdout
        XCTAssertEqual(out, "t-move-0\n")
    }
}

extension LXDSourceTests {
    func test_members_on_a_standalone_lxd_fail_the_prepare_clearly() async throws {
        var cfg = try LXDFixture.config(socket: try socket(), prefix: "t-nocluster")
        cfg.sandbox.lxd.members = ["m1"]
        let backend = try LXDBackend(config: cfg.sandbox, poolSize: 1, defaultLimits: cfg.defaultLimits, logger: Logger(label: "lxdtest"))
        do {
            try await backend.prepare(slot: 0, prestart: nil)
            XCTFail("placed a container on a member of an LXD that is not clustered")
        } catch {
            XCTAssertTrue("\(error)".contains("not clustered"), "\(error)")
        }
        XCTAssertNil(backend.slotMembers(), "a standalone LXD has no members")
        cfg.sandbox.lxd.members = []
        do {
            _ = try await backend.addGeneration(cfg)
            XCTFail("members changed on a reload: the slots' placement is the daemon's for its life")
        } catch {
            XCTAssertTrue("\(error)".contains("lxd.members"), "\(error)")
        }
        await backend.shutdown()
    }
}

/// Runs of a load, with when each started and whether it was answered right.
final class LoadLog: Sendable {
    let done = Atomic<Bool>(false)
    let answers = Mutex<[(started: ContinuousClock.Instant, ok: Bool, what: String)]>([])
}
