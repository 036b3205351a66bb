import CodesandCore
import CodesandProtocol
import Foundation
import Logging
import XCTest

@testable import CodesandLXD

/// The LXD backend against a real, private LXD (as root): runs, kills, resets, the pool's containers.
final class LXDBackendTests: XCTestCase {
    nonisolated(unsafe) static var lxd: Result<PrivateLXD, any Error>?

    override class func setUp() {
        lxd = Result { try PrivateLXD.start() }
    }

    override class func tearDown() {
        if case .success(let l) = lxd { l.stop() }
    }

    func socket() throws -> String {
        guard let lxd = Self.lxd else { throw XCTSkip("no LXD") }
        return try lxd.get().socket
    }

    /// A backend of `size` slots, every slot prepared; its containers are deleted after the test.
    func readyBackend(_ prefix: String, size: Int = 1) async throws -> LXDBackend {
        let backend = try LXDFixture.backend(socket: try socket(), prefix: prefix, poolSize: size)
        addTeardownBlock {
            await backend.shutdown()
            for slot in 0...size { try? await backend.pool.delete(backend.pool.name(slot)) }
        }
        for slot in 0..<size { try await backend.prepare(slot: slot, prestart: nil) }
        return backend
    }

    func test_a_run_returns_its_output_exit_code_and_runs_as_the_sandbox_user_in_its_home() async throws {
        let backend = try await readyBackend("t-basic")
        let job = try LXDFixture.job("echo out; echo err >&2; id -u; pwd; read x; echo got $x; exit 3", stdin: "hello\n")
        let start = ContinuousClock.now
        let outcome = try await backend.run(job, slot: 0, onOutput: nil)
        let ms = milliseconds(since: start)
        let run = try XCTUnwrap(outcome.run)
        XCTAssertEqual(run.stdout, "out\n1000\n/home/sandbox\ngot hello\n")
        XCTAssertEqual(run.stderr, "err\n")
        XCTAssertEqual(run.exitCode, 3)
        XCTAssertFalse(run.timedOut)
        print("lxd: push + exec round trip \(ms) ms")
    }

    func test_a_sleep_past_its_wall_limit_is_killed_within_100ms_of_the_deadline() async throws {
        let backend = try await readyBackend("t-timeout")
        let start = ContinuousClock.now
        let outcome = try await backend.run(try LXDFixture.job("echo before; sleep 10", wallMs: 1000), slot: 0, onOutput: nil)
        let run = try XCTUnwrap(outcome.run)
        XCTAssertTrue(run.timedOut)
        XCTAssertNil(run.waitStatus)
        XCTAssertEqual(run.stdout, "before\n")
        XCTAssertLessThan(run.wallNs, 1_100_000_000, "killed \(run.wallNs / 1_000_000) ms after its start")
        XCTAssertLessThan(milliseconds(since: start), 1500)
    }

    func test_output_past_the_byte_cap_is_truncated_and_the_run_killed() async throws {
        let backend = try await readyBackend("t-outcap")
        let outcome = try await backend.run(try LXDFixture.job("yes | head -c 10000000", outputBytes: 65536), slot: 0, onOutput: nil)
        let run = try XCTUnwrap(outcome.run)
        XCTAssertTrue(run.output.truncated)
        XCTAssertEqual(run.output.keptBytes, 65536)
        XCTAssertLessThan(run.wallNs, 3_000_000_000)
    }

    func test_a_setsid_daemon_dies_with_its_run_and_files_are_gone_after_prepare() async throws {
        let backend = try await readyBackend("t-reset")
        let code = """
        setsid sh -c 'sleep 100' >/dev/null 2>&1 </dev/null &
        for f in /home/sandbox/m /tmp/m /dev/shm/m /var/tmp/m; do echo x > $f || echo WRITEFAIL $f; done
        echo started
        """
        let first = try await backend.run(try LXDFixture.job(code), slot: 0, onOutput: nil)
        XCTAssertEqual(first.run?.stdout, "started\n")
        // Killed at the run's end (host side), before any restore.
        let host = backend.pool.name(0)
        XCTAssertEqual(sleepers(in: host), 0, "the setsid sleep outlived its run")
        let start = ContinuousClock.now
        try await backend.prepare(slot: 0, prestart: nil)
        print("lxd: restore to clean \(milliseconds(since: start)) ms")
        let check = "for f in /home/sandbox/m /tmp/m /dev/shm/m /var/tmp/m; do [ -e $f ] && echo SEEN $f; done; echo done"
        let second = try await backend.run(try LXDFixture.job(check), slot: 0, onOutput: nil)
        XCTAssertEqual(second.run?.stdout, "done\n")
    }

    func test_cat_dev_zero_into_home_stops_at_the_tmpfs_cap() async throws {
        let backend = try await readyBackend("t-disk")
        let outcome = try await backend.run(try LXDFixture.job("cat /dev/zero > ~/zero; echo rc=$?; wc -c < ~/zero"), slot: 0, onOutput: nil)
        let run = try XCTUnwrap(outcome.run)
        let lines = run.stdout.split(separator: "\n")
        XCTAssertEqual(lines.first, "rc=1", run.stdout + run.stderr)
        // The file fills the tmpfs up to its cap, less the blocks the tmpfs itself holds.
        let size = try XCTUnwrap(lines.last.flatMap { Int64($0.trimmingCharacters(in: .whitespaces)) })
        let cap = try CodesandConfig.defaults().sandbox.tmpfsBytes
        XCTAssertLessThanOrEqual(size, cap)
        XCTAssertGreaterThan(size, cap - (1 << 16))
        XCTAssertFalse(run.timedOut)
    }

    func test_a_fork_bomb_is_contained_killed_and_the_container_restored() async throws {
        let backend = try await readyBackend("t-bomb")
        let start = ContinuousClock.now
        let outcome = try await backend.run(try LXDFixture.job("bomb(){ bomb|bomb& };bomb", wallMs: 2000), slot: 0, onOutput: nil)
        XCTAssertLessThan(milliseconds(since: start), 4000)
        XCTAssertNotNil(outcome.run)
        try await backend.prepare(slot: 0, prestart: nil)
        let after = try await backend.run(try LXDFixture.job("echo ok"), slot: 0, onOutput: nil)
        XCTAssertEqual(after.run?.stdout, "ok\n")
    }

    func test_a_new_backend_adopts_the_containers_of_an_earlier_one() async throws {
        let first = try await readyBackend("t-adopt")
        let key = "echo $(hostname):$(stat -c %d:%i /)"
        let before = try await first.run(try LXDFixture.job(key), slot: 0, onOutput: nil).run?.stdout
        await first.shutdown()  // stops its containers: the next daemon restores and starts them
        let second = try LXDFixture.backend(socket: try socket(), prefix: "t-adopt", poolSize: 1)
        let start = ContinuousClock.now
        try await second.prepare(slot: 0, prestart: nil)
        let adoptMs = milliseconds(since: start)
        let after = try await second.run(try LXDFixture.job(key), slot: 0, onOutput: nil).run?.stdout
        XCTAssertEqual(before, after, "the container was replaced, not adopted")
        XCTAssertLessThan(adoptMs, 10_000)
    }

    func test_a_background_child_holding_stdout_does_not_hold_the_run_past_its_programs_exit() async throws {
        let backend = try await readyBackend("t-bg")
        let outcome = try await backend.run(try LXDFixture.job("sleep 100 & echo bg; exit 4"), slot: 0, onOutput: nil)
        let run = try XCTUnwrap(outcome.run)
        XCTAssertEqual(run.stdout, "bg\n")
        XCTAssertEqual(run.exitCode, 4)
        XCTAssertFalse(run.timedOut)
        XCTAssertLessThan(run.wallNs, 1_000_000_000, "the run lasted until its child was killed by the deadline")
    }

    /// Numbers for BENCHMARKS.md: a run on a ready container (push + exec + output + exit) and a restore.
    func test_measure_run_and_restore_times() async throws {
        let backend = try await readyBackend("t-measure")
        var runs: [Int64] = [], restores: [Int64] = []
        for _ in 0..<10 {
            var t = ContinuousClock.now
            try await backend.prepare(slot: 0, prestart: nil)
            restores.append(milliseconds(since: t))
            t = ContinuousClock.now
            let o = try await backend.run(try LXDFixture.job("echo x"), slot: 0, onOutput: nil)
            runs.append(milliseconds(since: t))
            XCTAssertEqual(o.run?.stdout, "x\n")
        }
        runs.sort()
        restores.sort()
        print("lxd: run on a ready container p50 \(runs[5]) ms (min \(runs[0]), max \(runs[9])); restore to clean p50 \(restores[5]) ms (min \(restores[0]), max \(restores[9]))")
    }

    func test_stream_runs_get_their_output_as_it_comes() async throws {
        let backend = try await readyBackend("t-stream")
        let chunks = ChunkBox()
        let outcome = try await backend.run(try LXDFixture.job("echo one; sleep 0.3; echo two"), slot: 0) { chunks.add($0) }
        XCTAssertEqual(outcome.run?.stdout, "one\ntwo\n")
        XCTAssertEqual(chunks.all.map(\.text).joined(), "one\ntwo\n")
        XCTAssertGreaterThanOrEqual(chunks.all.count, 2)
    }

    /// Host processes running `sleep 100` in `container`'s cgroup.
    func sleepers(in container: String) -> Int {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return pids.filter { pid in
            guard Int(pid) != nil, let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                  cmd == Data("sleep\u{0}100\u{0}".utf8),
                  let cg = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return false }
            return cg.contains("lxc.payload.\(container)")
        }.count
    }
}

final class ChunkBox: @unchecked Sendable {
    private let lock = NSLock()
    private var chunks: [OutputChunk] = []
    func add(_ c: OutputChunk) { lock.withLock { chunks.append(c) } }
    var all: [OutputChunk] { lock.withLock { chunks } }
}

/// `languages` comes from the image: programs are looked for in a container, not on the host.
final class LXDProbeTests: XCTestCase {
    func test_programs_are_found_in_the_image_not_on_the_host() async throws {
        let lxd = try PrivateLXD.start()
        defer { lxd.stop() }
        let backend = try LXDFixture.backend(socket: lxd.socket, prefix: "t-probe", poolSize: 1)
        let shIsThere = await backend.isExecutable("/bin/sh")
        let pythonIsThere = await backend.isExecutable("/usr/bin/python3")
        let etcIsThere = await backend.isExecutable("/etc")
        XCTAssertTrue(shIsThere)
        XCTAssertFalse(pythonIsThere, "python3 is the host's, not the busybox image's")
        XCTAssertFalse(etcIsThere, "a directory is not a program")
        let version = await backend.probe(["/bin/busybox"], env: [])
        XCTAssertTrue(version?.hasPrefix("BusyBox v") == true, "\(version ?? "nil")")
        await backend.shutdown()
        try? await backend.pool.delete(backend.pool.name(backend.pool.probeIndex))
    }
}

/// Limits that LXD's container carries, and a client that goes away.
final class LXDLimitTests: XCTestCase {
    nonisolated(unsafe) static var lxd: Result<PrivateLXD, any Error>?
    override class func setUp() { lxd = Result { try PrivateLXD.start() } }
    override class func tearDown() { if case .success(let l) = lxd { l.stop() } }

    func backend(_ prefix: String) async throws -> LXDBackend {
        guard let lxd = Self.lxd else { throw XCTSkip("no LXD") }
        let backend = try LXDFixture.backend(socket: try lxd.get().socket, prefix: prefix, poolSize: 1)
        addTeardownBlock {
            await backend.shutdown()
            for slot in 0...1 { try? await backend.pool.delete(backend.pool.name(slot)) }
        }
        try await backend.prepare(slot: 0, prestart: nil)
        return backend
    }

    func test_memory_past_the_runs_limit_is_an_oom_kill() async throws {
        let backend = try await backend("t-oom")
        // tmpfs pages cannot be swapped out: 48 MiB in /dev/shm under a 32 MiB limit.
        var job = try LXDFixture.job("head -c 50331648 /dev/zero > /dev/shm/fill; echo rc=$?")
        job.limits.memoryBytes = 32 << 20
        let outcome = try await backend.run(job, slot: 0, onOutput: nil)
        let run = try XCTUnwrap(outcome.run)
        XCTAssertTrue(run.oomKilled, "stdout \(run.stdout) stderr \(run.stderr)")
    }

    func test_a_cancelled_request_kills_its_run_at_once() async throws {
        let backend = try await backend("t-cancel")
        let job = try LXDFixture.job("echo started; sleep 10", wallMs: 20_000)
        let task = Task { try await backend.run(job, slot: 0, onOutput: nil) }
        try await Task.sleep(for: .milliseconds(500))
        let start = ContinuousClock.now
        task.cancel()
        let outcome = try await task.value
        XCTAssertLessThan(milliseconds(since: start), 1000)
        XCTAssertEqual(outcome.run?.stdout, "started\n")
        XCTAssertNil(outcome.run?.waitStatus)
        XCTAssertEqual(backend.pool.name(0), "t-cancel-0")
    }
}
