import CodesandCore
import CodesandProtocol
import Foundation
import Logging
import XCTest

@testable import CodesandLXD

/// The LXD backend over `lxd.url`: the same private LXD listening on 127.0.0.21:8443 too, a client
/// certificate made here with openssl and trusted by it, its server certificate pinned. Runs go
/// over TLS (requests and exec websockets) and are killed and accounted through LXD's API alone.
final class LXDRemoteTests: XCTestCase {
    static let address = "127.0.0.21:8443"
    nonisolated(unsafe) static var lxd: Result<PrivateLXD, any Error>?
    nonisolated(unsafe) static var certs = ""

    override class func setUp() {
        lxd = Result {
            guard getuid() == 0 else { throw XCTSkip("needs root (LXD)") }
            certs = "/tmp/codesand-lxdremote-certs-\(getpid())"
            try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
            for name in ["trusted", "stranger"] { try makeCertificate(name) }
            return try PrivateLXD.start(options: ["--https", address, "--trust", certs + "/trusted.crt"], name: "lxdremote")
        }
    }

    override class func tearDown() {
        if case .success(let l) = lxd { l.stop() }
        if !certs.isEmpty { try? FileManager.default.removeItem(atPath: certs) }
    }

    /// A self-signed client certificate as an admin makes one: `openssl req -x509` (an argv, no shell).
    static func makeCertificate(_ name: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-nodes",
                       "-keyout", "\(certs)/\(name).key", "-out", "\(certs)/\(name).crt", "-days", "30", "-subj", "/CN=codesand-\(name)"]
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw LXDTestError("openssl req failed (\(p.terminationStatus))") }
    }

    func server() throws -> PrivateLXD {
        guard let lxd = Self.lxd else { throw XCTSkip("no LXD") }
        return try lxd.get()
    }

    /// The [lxd] config of a remote LXD: the URL, a client certificate, the pinned fingerprint.
    func config(prefix: String, cert: String = "trusted", fingerprint: String? = nil, url: String? = nil) throws -> CodesandConfig {
        let lxd = try server()
        var cfg = try LXDFixture.config(socket: "/nonexistent/unix.socket", prefix: prefix)
        let https = try XCTUnwrap(lxd.https)
        cfg.sandbox.lxd.url = url ?? "https://\(https)"
        cfg.sandbox.lxd.clientCert = "\(Self.certs)/\(cert).crt"
        cfg.sandbox.lxd.clientKey = "\(Self.certs)/\(cert).key"
        let real = try XCTUnwrap(lxd.fingerprint)
        cfg.sandbox.lxd.fingerprint = fingerprint ?? real
        return cfg
    }

    func connect(_ cfg: CodesandConfig, size: Int = 1) async throws -> LXDBackend {
        try await LXDBackend.connect(config: cfg.sandbox, poolSize: size, defaultLimits: cfg.defaultLimits, logger: Logger(label: "lxdremote"))
    }

    /// A remote backend of one prepared slot; its containers are deleted after the test.
    func readyBackend(_ prefix: String) async throws -> LXDBackend {
        let backend = try await connect(try config(prefix: prefix))
        XCTAssertTrue(backend.client.transport.isRemote)
        addTeardownBlock {
            await backend.shutdown()
            for slot in 0...1 { try? await backend.pool.delete(backend.pool.name(slot)) }
        }
        try await backend.prepare(slot: 0, prestart: nil)
        return backend
    }

    func test_a_run_over_the_url_returns_its_output_exit_code_and_usage() async throws {
        let backend = try await readyBackend("r-basic")
        let job = try LXDFixture.job("echo out; echo err >&2; id -u; pwd; read x; echo got $x; exit 3", stdin: "hello\n")
        let start = ContinuousClock.now
        let run = try await stage(backend, job)
        print("lxd remote: push + exec round trip over TLS \(milliseconds(since: start)) ms")
        XCTAssertEqual(run.stdout, "out\n1000\n/home/sandbox\ngot hello\n")
        XCTAssertEqual(run.stderr, "err\n")
        XCTAssertEqual(run.exitCode, 3)
        XCTAssertFalse(run.timedOut)
        // CPU time and the memory peak come from LXD's instance state.
        try await backend.prepare(slot: 0, prestart: nil)
        let busy = try await stage(backend, try LXDFixture.job("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo $i"))
        XCTAssertEqual(busy.stdout, "200000\n")
        XCTAssertGreaterThan(busy.cpuNs, 50_000_000, "a busy loop of \(busy.wallNs / 1_000_000) ms used \(busy.cpuNs / 1_000_000) ms of CPU")
        XCTAssertLessThanOrEqual(busy.cpuNs, busy.wallNs + 200_000_000)
        XCTAssertGreaterThan(busy.memoryPeakBytes, 0)
    }

    func test_a_sleep_past_its_wall_limit_is_killed_through_lxd() async throws {
        let backend = try await readyBackend("r-timeout")
        var late: [UInt64] = []
        for _ in 0..<3 {
            let start = ContinuousClock.now
            let run = try await stage(backend, try LXDFixture.job("echo before; sleep 10", wallMs: 1000))
            XCTAssertTrue(run.timedOut)
            XCTAssertNil(run.waitStatus)
            XCTAssertEqual(run.stdout, "before\n")
            XCTAssertLessThan(milliseconds(since: start), 3000)
            late.append(run.wallNs / 1_000_000 - 1000)
            try await backend.prepare(slot: 0, prestart: nil)
        }
        print("lxd remote: timeout kill lands \(late.map { "\($0)" }.joined(separator: ", ")) ms after the deadline")
        // An exec of the kill over TLS: a round trip or two, not the host cgroup's write.
        XCTAssertLessThan(late.min()!, 500)
    }

    func test_a_fork_bomb_is_contained_and_the_container_restored() async throws {
        let backend = try await readyBackend("r-bomb")
        let start = ContinuousClock.now
        let outcome = try await backend.run(try LXDFixture.job("bomb(){ bomb|bomb& };bomb", wallMs: 2000), slot: 0, onOutput: nil)
        print("lxd remote: fork bomb run ended after \(milliseconds(since: start)) ms")
        XCTAssertLessThan(milliseconds(since: start), 6000)
        XCTAssertNotNil(outcome.run)
        try await backend.prepare(slot: 0, prestart: nil)
        let after = try await backend.run(try LXDFixture.job("echo ok; ps | grep -c '[b]omb'"), slot: 0, onOutput: nil)
        XCTAssertEqual(after.run?.stdout, "ok\n0\n")
    }

    /// Sleeps holding every process slot while the program waits (a shell that cannot fork
    /// exits, and the program's exit kills what it left: so the bomb is a subshell of its own):
    /// the exec of the kill cannot start, so the container is stopped by force.
    func test_a_fork_bomb_holding_every_process_slot_is_ended_by_a_forced_stop() async throws {
        let backend = try await readyBackend("r-hold")
        let start = ContinuousClock.now
        let run = try await stage(backend, try LXDFixture.job("sleep 100 & (while :; do sleep 100 & done) 2>/dev/null; echo full; wait",
                                                              wallMs: 1500))
        XCTAssertEqual(run.stdout, "full\n")
        print("lxd remote: process-slot-holding bomb ended after \(milliseconds(since: start)) ms")
        XCTAssertTrue(run.timedOut)
        XCTAssertLessThan(milliseconds(since: start), 8000)
        let (status, _) = try await backend.pool.state(backend.pool.name(0))
        XCTAssertEqual(status, "Stopped", "the kill's exec ran after all: this bomb did not hold every slot")
        try await backend.prepare(slot: 0, prestart: nil)
        let after = try await backend.run(try LXDFixture.job("echo ok"), slot: 0, onOutput: nil)
        XCTAssertEqual(after.run?.stdout, "ok\n")
    }

    func test_a_setsid_daemon_and_a_background_child_die_with_their_run() async throws {
        let backend = try await readyBackend("r-setsid")
        let code = "setsid sh -c 'sleep 100' >/dev/null 2>&1 </dev/null & sleep 100 & echo started; exit 4"
        let first = try await stage(backend, try LXDFixture.job(code))
        XCTAssertEqual(first.stdout, "started\n")
        XCTAssertEqual(first.exitCode, 4)
        XCTAssertLessThan(first.wallNs, 1_500_000_000, "the background child held the run")
        // The same machine, so the host can look: killed at the run's end, before any restore.
        XCTAssertEqual(LXDRemoteTests.sleepers(in: backend.pool.name(0)), 0, "a sleep outlived its run")
        try await backend.prepare(slot: 0, prestart: nil)
        let second = try await backend.run(try LXDFixture.job("ps -o user,args | grep -c '[s]leep 100'"), slot: 0, onOutput: nil)
        XCTAssertEqual(second.run?.stdout, "0\n")
        XCTAssertEqual(backend.strayProcesses()?.count, 0)
    }

    /// A run's own memory limit is set live (PATCH) and an OOM is told by the peak reaching it;
    /// the restore puts the pool's limit back.
    func test_a_runs_memory_limit_is_set_through_lxd_and_its_oom_kill_seen() async throws {
        let backend = try await readyBackend("r-oom")
        // dd's own 48 MiB buffer: the OOM killer's choice is dd, never the container's init (a
        // file in a tmpfs holds memory no process owns, and the killer may take init then: the
        // container stops, and its counters with it).
        var job = try LXDFixture.job("dd if=/dev/zero of=/dev/null bs=50331648 count=1 2>/dev/null; echo rc=$?")
        job.limits.memoryBytes = 32 << 20
        let run = try await stage(backend, job)
        XCTAssertTrue(run.oomKilled, "stdout \(run.stdout) stderr \(run.stderr) peak \(run.memoryPeakBytes)")
        XCTAssertGreaterThanOrEqual(run.memoryPeakBytes, (32 << 20) - LXDRemoteControl.oomSlackBytes)
        let name = backend.pool.name(0)
        let limit = { try await backend.client.call(.GET, LXDPath.instance(name)).metadata.objectValue?["config"]?.objectValue?["limits.memory"] }
        let during = try await limit()
        XCTAssertEqual(during, .string("\(32 << 20)"))
        try await backend.prepare(slot: 0, prestart: nil)
        let after = try await limit()
        XCTAssertEqual(after, .string("\(try CodesandConfig.defaults().defaultLimits.memoryBytes)"))
        let small = try await stage(backend, try LXDFixture.job("echo ok"))
        XCTAssertFalse(small.oomKilled)
        XCTAssertLessThan(small.memoryPeakBytes, 32 << 20)
    }

    func test_a_cancelled_request_kills_its_run_at_once() async throws {
        let backend = try await readyBackend("r-cancel")
        let job = try LXDFixture.job("echo started; sleep 10", wallMs: 20_000)
        let task = Task { try await backend.run(job, slot: 0, onOutput: nil) }
        try await Task.sleep(for: .milliseconds(800))
        let start = ContinuousClock.now
        task.cancel()
        let outcome = try await task.value
        XCTAssertLessThan(milliseconds(since: start), 1500)
        XCTAssertEqual(outcome.run?.stdout, "started\n")
        XCTAssertEqual(LXDRemoteTests.sleepers(in: backend.pool.name(0)), 0)
    }

    func test_a_wrong_fingerprint_is_refused_naming_the_servers() async throws {
        let real = try XCTUnwrap(try server().fingerprint)
        let wrong = String(repeating: "ab:", count: 31) + "ab"
        do {
            _ = try await connect(try config(prefix: "r-wrongfp", fingerprint: wrong))
            XCTFail("a server with another certificate was accepted")
        } catch let e as LXDError {
            print("lxd remote: wrong fingerprint: \(e)")
            XCTAssertEqual(e.what, "lxd.fingerprint", "\(e)")
            XCTAssertTrue(e.message.contains(real), "the server's own fingerprint is not shown: \(e)")
            XCTAssertTrue(e.message.contains(String(repeating: "ab", count: 32)), "\(e)")
        }
    }

    func test_a_client_certificate_the_server_does_not_trust_is_refused() async throws {
        do {
            _ = try await connect(try config(prefix: "r-stranger", cert: "stranger"))
            XCTFail("an untrusted client was accepted")
        } catch let e as LXDError {
            print("lxd remote: untrusted client: \(e)")
            XCTAssertEqual(e.what, "lxd.client_cert", "\(e)")
            XCTAssertTrue(e.message.contains("does not trust"), "\(e)")
        }
    }

    func test_an_unreachable_url_and_a_bad_key_are_clear_errors() async throws {
        do {
            _ = try await connect(try config(prefix: "r-unreach", url: "https://127.0.0.21:1"))
            XCTFail("nothing listens there")
        } catch let e as LXDError {
            print("lxd remote: unreachable: \(e)")
            XCTAssertTrue(e.what.contains("https://127.0.0.21:1") && e.what.contains("lxd.url"), "\(e)")
        }
        var cfg = try config(prefix: "r-badkey")
        cfg.sandbox.lxd.clientKey = "\(Self.certs)/stranger.key"  // another certificate's key
        do {
            _ = try await connect(cfg)
            XCTFail("a key that does not go with the certificate was accepted")
        } catch let e as LXDError {
            print("lxd remote: mismatched key: \(e)")
            XCTAssertEqual(e.what, "lxd.client_key", "\(e)")
        }
    }

    /// The run stage of `job` in slot 0.
    func stage(_ backend: LXDBackend, _ job: SandboxJob) async throws -> StageOutcome {
        let outcome = try await backend.run(job, slot: 0, onOutput: nil)
        return try XCTUnwrap(outcome.run)
    }

    /// Host processes running `sleep 100` in `container`'s cgroup.
    static func sleepers(in container: String) -> Int {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return pids.filter { pid in
            guard Int(pid) != nil, let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                  cmd == Data("sleep\u{0}100\u{0}".utf8),
                  let cg = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return false }
            return cg.contains("lxc.payload.\(container)")
        }.count
    }
}
