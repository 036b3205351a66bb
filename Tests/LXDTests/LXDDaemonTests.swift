import CodesandClient
import CodesandCore
import CodesandProtocol
import CodesandTestSupport
import Foundation
import Logging
import XCTest

@testable import CodesandLXD

/// The LXD backend as admins run it: a real codesandd killed with SIGKILL mid-run and started again
/// over the same containers, and a pool of 8 answering runs spaced as a channel's are, none of them
/// waiting for a restore (issue #15's acceptance).
final class LXDDaemonTests: XCTestCase {
    nonisolated(unsafe) static var lxd: Result<PrivateLXD, any Error>?
    override class func setUp() { lxd = Result { try PrivateLXD.start() } }
    override class func tearDown() { if case .success(let l) = lxd { l.stop() } }

    func socket() throws -> String {
        guard let lxd = Self.lxd else { throw XCTSkip("no LXD") }
        return try lxd.get().socket
    }

    /// codesandd beside the test runner (.build/<triple>/debug).
    static var daemonPath: String { URL(fileURLWithPath: DebianImage.codesand).deletingLastPathComponent().appendingPathComponent("codesandd").path }

    func test_a_daemon_killed_mid_run_restarts_over_its_containers_and_leaves_nothing() async throws {
        let lxdSocket = try socket()
        let dir = "/tmp/codesand-lxd-k9-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir + "/state", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let prefix = "t-k9"
        try """
        [sandbox]
        backend = "lxd"
        cgroup_name = "codesand-lxd-k9-\(getpid())"
        state_dir = "\(dir)/state"
        [lxd]
        socket = "\(lxdSocket)"
        image = "codesand-test"
        prefix = "\(prefix)"
        [pool]
        size = 2
        """.write(toFile: dir + "/config.toml", atomically: true, encoding: .utf8)
        let client = LXDClient(socketPath: lxdSocket)
        addTeardownBlock {
            for name in ["\(prefix)-0", "\(prefix)-1", "\(prefix)-probe"] {
                _ = try? await client.run(.PUT, LXDPath.state(name), json: .object(["action": .string("stop"), "force": .bool(true)]))
                _ = try? await client.run(.DELETE, LXDPath.instance(name))
            }
        }
        let sock = dir + "/s.sock"
        let argv = [Self.daemonPath, "--config", dir + "/config.toml", "--socket", sock]
        let first = try ChildProcess(argv, outputPath: dir + "/1.log")
        defer { first.stop() }
        let c1 = try await ready(sock, slots: 2, log: dir + "/1.log")
        // A run that leaves a daemon of its own, still running when codesandd dies.
        let marker = "\(UInt32.random(in: 100_000...999_999))"
        let pending = Task { try? await c1.run(RunParams(language: "sh", code: "setsid sleep 71\(marker) & sleep 72\(marker)")) }
        defer { pending.cancel() }
        let started = await until(seconds: 20) { !hostProcesses("sleep 71\(marker)").isEmpty }
        XCTAssertTrue(started, "the run did not start")
        kill(first.pid, SIGKILL)
        XCTAssertNotNil(first.wait(timeout: .seconds(10)))

        let second = try ChildProcess(argv, outputPath: dir + "/2.log")
        defer { second.stop(grace: .seconds(30)) }
        let c2 = try await ready(sock, slots: 2, log: dir + "/2.log")
        let r = try await c2.run(RunParams(language: "sh", code: "echo back; cat /proc/[0-9]*/comm | grep -c sleep"))
        XCTAssertEqual(r.stdout, "back\n0\n", "\(r)")
        XCTAssertTrue(hostProcesses("sleep 71\(marker)").isEmpty && hostProcesses("sleep 72\(marker)").isEmpty,
                      "the killed daemon's run survived its restart")
        let log = (try? String(contentsOfFile: dir + "/2.log", encoding: .utf8)) ?? ""
        XCTAssertTrue(log.contains("adopted the container of an earlier daemon"), "the containers were not reused: \(log.suffix(2000))")
        // Nothing with the pool's prefix but the pool's own containers.
        let names = try await containerNames(client, prefix: prefix)
        XCTAssertTrue(Set(names).isSubset(of: ["\(prefix)-0", "\(prefix)-1", "\(prefix)-probe"]), "\(names)")
        XCTAssertTrue(names.contains("\(prefix)-0") && names.contains("\(prefix)-1"), "\(names)")
    }

    func test_a_pool_of_8_answers_chat_paced_runs_without_waiting_for_a_restore() async throws {
        var cfg = try LXDFixture.config(socket: try socket(), prefix: "t-pace")
        cfg.poolSize = 8
        cfg.maxRunning = 8
        let logger = Logger(label: "lxdtest")
        let backend = try LXDBackend(config: cfg.sandbox, poolSize: 8, defaultLimits: cfg.defaultLimits, logger: logger)
        let languages = await LanguageDetector.detect(cfg.languages, backend: backend, config: cfg.sandbox, logger: logger)
        let service = RunService(config: cfg, languages: languages, backend: backend, version: "test", logger: logger)
        addTeardownBlock {
            service.stop()
            await backend.shutdown()
            for slot in 0...8 { try? await backend.pool.delete(backend.pool.name(slot)) }
        }
        service.start()
        let allReady = await service.waitUntilReady(timeout: .seconds(180))
        XCTAssertTrue(allReady, "\(service.status().slots)")
        // Two runs a second for 12 s, as a busy channel asks: each container comes round again every
        // 4 s, long after its restore (~1 s) ended, so a run never waits for one.
        var times: [Double] = []
        var readyAtRequest: [Int] = []
        for i in 0..<24 {
            readyAtRequest.append(service.status().slots["ready"] ?? 0)
            let start = ContinuousClock.now
            let r = try await service.run(RunParams(language: "sh", code: "echo \(i)"), peer: PeerInfo(pid: getpid(), uid: 0, gid: 0))
            let d = (ContinuousClock.now - start).components
            let elapsed = Double(d.seconds) + Double(d.attoseconds) / 1e18
            XCTAssertEqual(r.stdout, "\(i)\n")
            times.append(elapsed)
            try await Task.sleep(for: .milliseconds(max(0, 500 - Int(elapsed * 1000))))
        }
        // Every run found a restored container waiting (runs are one at a time: nothing takes it first).
        XCTAssertFalse(readyAtRequest.contains(0), "ready containers at each request: \(readyAtRequest)")
        let status = service.status()
        XCTAssertGreaterThan(status.resetMsP50, 0, "restores took place")
        // A run that waited for a restore would take the restore's time on top of its own.
        let slowest = times.max() ?? 0
        XCTAssertLessThan(slowest * 1000, status.resetMsP50 * 0.8,
                          "slowest run \(Int(slowest * 1000)) ms, restore p50 \(Int(status.resetMsP50)) ms: \(times.map { Int($0 * 1000) })")
    }

    private func ready(_ sock: String, slots: Int, log: String) async throws -> CodesandClient {
        var client: CodesandClient?
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            if client == nil { client = try? await CodesandClient.connect(socketPath: sock) }
            if let c = client, let s = try? await c.status(), (s.slots["ready"] ?? 0) >= slots { return c }
            try await Task.sleep(for: .milliseconds(200))
        }
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        throw LXDTestError("the daemon did not get \(slots) slots ready: \(text.suffix(2000))")
    }

    private func until(seconds: Double, _ check: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if check() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return check()
    }

    private func containerNames(_ client: LXDClient, prefix: String) async throws -> [String] {
        guard case .array(let urls) = try await client.call(.GET, LXDPath.instances()).metadata else { return [] }
        return urls.compactMap { u -> String? in
            guard case .string(let url) = u, let last = url.split(separator: "?").first?.split(separator: "/").last else { return nil }
            let name = String(last).percentDecoded
            return name.hasPrefix(prefix + "-") ? name : nil
        }
    }
}

/// Host processes whose command line contains `needle` (a container's processes show on the host).
func hostProcesses(_ needle: String) -> [pid_t] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry -> pid_t? in
        guard let pid = pid_t(entry), pid != getpid(),
              let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
        let cmdline = String(decoding: raw.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        return cmdline.contains(needle) ? pid : nil
    }
}
