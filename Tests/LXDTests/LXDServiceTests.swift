import CodesandCore
import CodesandProtocol
import Foundation
import Logging
import XCTest

@testable import CodesandLXD

/// The daemon's core (RunService: languages, limits, results, the pool) over the LXD backend: the
/// protocol's answers as the native backend gives them.
final class LXDServiceTests: XCTestCase {
    nonisolated(unsafe) static var lxd: Result<PrivateLXD, any Error>?
    override class func setUp() { lxd = Result { try PrivateLXD.start() } }
    override class func tearDown() { if case .success(let l) = lxd { l.stop() } }

    func service(_ prefix: String, pool: Int = 2) async throws -> RunService {
        guard let lxd = Self.lxd else { throw XCTSkip("no LXD") }
        var cfg = try LXDFixture.config(socket: try lxd.get().socket, prefix: prefix)
        cfg.poolSize = pool
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
        let ready = await service.waitUntilReady(timeout: .seconds(60))
        XCTAssertTrue(ready, "\(service.status().slots)")
        return service
    }

    func run(_ s: RunService, _ code: String, args: [String]? = nil, limits: RunLimits? = nil) async throws -> RunResult {
        try await s.run(RunParams(language: "sh", code: code, args: args, limits: limits), peer: PeerInfo(pid: getpid(), uid: 0, gid: 0))
    }

    func test_results_args_timeouts_and_caps_are_the_protocols() async throws {
        let s = try await service("t-svc")
        XCTAssertEqual(s.languages.names, ["sh"], "languages come from the busybox image")
        XCTAssertEqual(s.status().backend, "lxd")

        let exit3 = try await run(s, "echo \"$1|$2\"; exit 3", args: ["a b", "c"])
        XCTAssertEqual(exit3.stdout, "a b|c\n")
        XCTAssertEqual(exit3.exitCode, 3)
        XCTAssertEqual(exit3.status, .error)

        let ok = try await run(s, "echo ok")
        XCTAssertEqual(ok.status, .ok)
        XCTAssertEqual(ok.exitCode, 0)

        let slow = try await run(s, "sleep 5", limits: RunLimits(wallMs: 500))
        XCTAssertEqual(slow.status, .timeout)
        XCTAssertTrue(slow.timedOut)
        XCTAssertLessThan(slow.wallMs, 700)

        let flood = try await run(s, "yes", limits: RunLimits(outputLines: 10))
        XCTAssertTrue(flood.truncated)
        XCTAssertEqual(flood.stdout, String(repeating: "y\n", count: 10))

        do {
            _ = try await s.run(RunParams(language: "python3", code: "print(1)"), peer: PeerInfo(pid: getpid(), uid: 0, gid: 0))
            XCTFail("python3 is not in the image")
        } catch {
            XCTAssertEqual(error.code, RPCErrorCode.unknownLanguage.rawValue)
        }
    }

    func test_a_burst_of_three_times_the_pool_is_all_answered() async throws {
        let s = try await service("t-burst", pool: 2)
        let outputs = try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<6 {
                group.addTask {
                    try await s.run(RunParams(language: "sh", code: "echo \(i)"), peer: PeerInfo(pid: getpid(), uid: 0, gid: 0)).stdout
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(outputs.sorted(), (0..<6).map { "\($0)\n" })
    }
}

/// What containers are made from: a reload with another spec, and the old LXD setup's snapshot as source.
final class LXDSourceTests: XCTestCase {
    nonisolated(unsafe) static var lxd: Result<PrivateLXD, any Error>?
    override class func setUp() { lxd = Result { try PrivateLXD.start() } }
    override class func tearDown() { if case .success(let l) = lxd { l.stop() } }

    func socket() throws -> String {
        guard let lxd = Self.lxd else { throw XCTSkip("no LXD") }
        return try lxd.get().socket
    }

    func test_a_reload_with_another_spec_replaces_the_container_at_its_next_prepare() async throws {
        var cfg = try LXDFixture.config(socket: try socket(), prefix: "t-reload")
        let backend = try LXDBackend(config: cfg.sandbox, poolSize: 1, defaultLimits: cfg.defaultLimits, logger: Logger(label: "lxdtest"))
        addTeardownBlock {
            await backend.shutdown()
            for slot in 0...1 { try? await backend.pool.delete(backend.pool.name(slot)) }
        }
        try await backend.prepare(slot: 0, prestart: nil)
        let df = "df -k /tmp | tail -n 1"
        let before = try await backend.run(try LXDFixture.job(df), slot: 0, onOutput: nil).run?.stdout
        let same = try await backend.addGeneration(cfg)
        XCTAssertEqual(same, 0, "nothing changed: no new generation")
        cfg.sandbox.tmpfsBytes = 32 << 20
        let next = try await backend.addGeneration(cfg)
        XCTAssertEqual(next, 1)
        try await backend.prepare(slot: 0, prestart: nil)
        let after = try await backend.run(try LXDFixture.job(df), slot: 0, onOutput: nil).run?.stdout
        XCTAssertTrue(before?.contains(" 65536 ") == true, before ?? "nil")
        XCTAssertTrue(after?.contains(" 32768 ") == true, after ?? "nil")
        cfg.sandbox.lxd.prefix = "other"
        do {
            _ = try await backend.addGeneration(cfg)
            XCTFail("the prefix names the pool: a reload cannot change it")
        } catch {}
    }

    func test_an_existing_containers_snapshot_is_a_source() async throws {
        let client = LXDClient(socketPath: try socket())
        // The old LXD setup: a template container with a snapshot.
        try await client.run(.POST, LXDPath.instances(), json: .object([
            "name": .string("t-template"), "source": .object(["type": .string("image"), "alias": .string("codesand-test")])]))
        try await client.run(.POST, LXDPath.snapshots("t-template"), json: .object(["name": .string("default")]))
        var cfg = try LXDFixture.config(socket: try socket(), prefix: "t-src")
        cfg.sandbox.lxd.image = ""
        cfg.sandbox.lxd.source = "t-template/default"
        let backend = try LXDBackend(config: cfg.sandbox, poolSize: 1, defaultLimits: cfg.defaultLimits, logger: Logger(label: "lxdtest"))
        addTeardownBlock {
            await backend.shutdown()
            for slot in 0...1 { try? await backend.pool.delete(backend.pool.name(slot)) }
            try? await backend.pool.delete("t-template")
        }
        try await backend.prepare(slot: 0, prestart: nil)
        let out = try await backend.run(try LXDFixture.job("id -u; hostname"), slot: 0, onOutput: nil).run?.stdout
        XCTAssertEqual(out, "1000\nt-src-0\n")
    }
}

extension LXDSourceTests {
    func test_a_missing_image_fails_the_prepare_with_lxds_own_words() async throws {
        var cfg = try LXDFixture.config(socket: try socket(), prefix: "t-noimage")
        cfg.sandbox.lxd.image = "no-such-image"
        let backend = try LXDBackend(config: cfg.sandbox, poolSize: 1, defaultLimits: cfg.defaultLimits, logger: Logger(label: "lxdtest"))
        do {
            try await backend.prepare(slot: 0, prestart: nil)
            XCTFail("prepared a container from an image that is not there")
        } catch {
            XCTAssertTrue("\(error)".contains("not found"), "\(error)")
        }
        await backend.shutdown()
    }
}

extension LXDSourceTests {
    func test_a_container_whose_snapshot_was_deleted_fails_once_then_is_replaced() async throws {
        let cfg = try LXDFixture.config(socket: try socket(), prefix: "t-nosnap")
        let backend = try LXDBackend(config: cfg.sandbox, poolSize: 1, defaultLimits: cfg.defaultLimits, logger: Logger(label: "lxdtest"))
        addTeardownBlock {
            await backend.shutdown()
            for slot in 0...1 { try? await backend.pool.delete(backend.pool.name(slot)) }
        }
        try await backend.prepare(slot: 0, prestart: nil)
        try await backend.client.run(.DELETE, LXDPath.snapshots("t-nosnap-0") + "/clean")
        do {
            try await backend.prepare(slot: 0, prestart: nil)
            XCTFail("a restore to a snapshot that is gone succeeded")
        } catch {
            XCTAssertTrue("\(error)".contains("LXD"), "\(error)")
        }
        try await backend.prepare(slot: 0, prestart: nil)
        let out = try await backend.run(try LXDFixture.job("echo back"), slot: 0, onOutput: nil).run?.stdout
        XCTAssertEqual(out, "back\n")
    }
}
