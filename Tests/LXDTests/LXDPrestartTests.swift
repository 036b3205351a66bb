import CodesandCore
import CodesandProtocol
import Foundation
import Logging
import XCTest

@testable import CodesandLXD

/// Pre-started interpreters on LXD (issue #15 item 5), against a real private LXD with the Debian
/// image (python3): a run handed to the waiting launcher gives what the plain exec gives, the
/// limits still hold, and a launcher that cannot serve the run is let go without a trace.
final class LXDPrestartTests: XCTestCase {
    nonisolated(unsafe) static var lxd: Result<PrivateLXD, any Error>?
    override class func setUp() { lxd = Result { try PrivateLXD.start() } }
    override class func tearDown() { if case .success(let l) = lxd { l.stop() } }

    static let image = "codesand-debian"

    /// A backend of `size` slots on the Debian image; its containers are deleted after the test.
    func backend(_ prefix: String, size: Int) async throws -> (LXDBackend, CodesandConfig) {
        guard let lxd = Self.lxd else { throw XCTSkip("no LXD") }
        let socket = try lxd.get().socket
        try await DebianImage.ensure(lxdSocket: socket, alias: Self.image)
        var cfg = try LXDFixture.config(socket: socket, prefix: prefix)
        cfg.sandbox.lxd.image = Self.image
        let backend = try LXDBackend(config: cfg.sandbox, poolSize: size, defaultLimits: cfg.defaultLimits,
                                     logger: Logger(label: "lxdtest"))
        addTeardownBlock {
            await backend.shutdown()
            for slot in 0...size { try? await backend.pool.delete(backend.pool.name(slot)) }
        }
        return (backend, cfg)
    }

    func python(_ cfg: CodesandConfig) throws -> LanguageSpec {
        try XCTUnwrap(cfg.languages.first { $0.name == "python3" })
    }

    /// What the daemon's prepare gets for python3 (JobBuilder.prestartSpec).
    func prestartSpec(_ cfg: CodesandConfig) throws -> PrestartSpec {
        let spec = try python(cfg)
        return PrestartSpec(language: spec.name, argv: spec.prestart, env: environment(cfg, spec), zygote: spec.zygote,
                            launcher: spec.launcher)
    }

    func environment(_ cfg: CodesandConfig, _ spec: LanguageSpec) -> [String] {
        var env = cfg.sandbox.env
        for (k, v) in spec.env { env[k] = v }
        return env.keys.sorted().map { "\($0)=\(env[$0]!)" }
    }

    /// A python3 job as JobBuilder makes one: its run argv, and the argv a waiting launcher takes.
    func job(_ cfg: CodesandConfig, _ code: String, args: [String] = [], stdin: String = "", wallMs: Int64 = 5000,
             outputBytes: Int64 = 65536) throws -> SandboxJob {
        let spec = try python(cfg)
        var limits = cfg.defaultLimits
        limits.wallMs = wallMs
        limits.cpuMs = wallMs
        limits.outputBytes = outputBytes
        limits.outputLines = 1 << 20
        let path = cfg.sandbox.home + "/" + spec.file
        var job = SandboxJob(argv: ["/usr/bin/python3", path] + args, env: environment(cfg, spec), fileName: spec.file,
                             code: Array(code.utf8), stdin: Array(stdin.utf8), limits: limits)
        job.prestart = (spec.name, [path] + args)
        return job
    }

    func test_prestarted_python3_runs_give_what_the_plain_exec_gives() async throws {
        let (backend, cfg) = try await backend("t-pre-same", size: 2)
        let cases: [(code: String, args: [String], stdin: String)] = [
            ("import sys\nprint('out', sys.argv, __name__, __file__)\nprint('err', file=sys.stderr)\nprint(sys.stdin.read())\nsys.exit(3)",
             ["a b", "", "c\nd", "back\\slash", "%s\\0000", "é"], "line one\nline two"),
            ("import os, sys\nprint(os.getcwd(), os.getuid(), sys.path[0], os.environ.get('PYTHONUNBUFFERED'), os.environ.get('HOME'))\n"
             + "print(sorted(os.listdir('/proc/self/fd')), os.getppid() != 1, sys.orig_argv[1:])", [], ""),
            ("def f():\n    raise ValueError('boom')\nf()", [], ""),
            ("print('unterminated", [], ""),
            ("import sys\nfor line in sys.stdin:\n    print(len(line), end=' ')\nraise SystemExit('bye')", ["x"], String(repeating: "ab\n", count: 3000)),
        ]
        for c in cases {
            let spec = try prestartSpec(cfg)
            async let p0: Void = backend.prepare(slot: 0, prestart: spec)
            async let p1: Void = backend.prepare(slot: 1, prestart: nil)
            _ = try await (p0, p1)
            let j = try job(cfg, c.code, args: c.args, stdin: c.stdin)
            let pre = try await backend.run(j, slot: 0, onOutput: nil)
            let plain = try await backend.run(j, slot: 1, onOutput: nil)
            XCTAssertTrue(pre.prestarted, c.code)
            XCTAssertFalse(plain.prestarted, c.code)
            let a = try XCTUnwrap(pre.run), b = try XCTUnwrap(plain.run)
            XCTAssertEqual(a.stdout, b.stdout, c.code)
            XCTAssertEqual(a.stderr, b.stderr, c.code)
            XCTAssertEqual(a.waitStatus, b.waitStatus, c.code)
            XCTAssertFalse(a.timedOut || a.output.truncated, c.code)
            XCTAssertFalse(a.stdout.isEmpty && a.stderr.isEmpty, "the program ran: \(c.code)")
        }
    }

    func test_a_prestarted_run_is_killed_at_its_wall_limit_and_at_its_output_cap() async throws {
        let (backend, cfg) = try await backend("t-pre-limits", size: 1)
        try await backend.prepare(slot: 0, prestart: try prestartSpec(cfg))
        let slow = try await backend.run(try job(cfg, "import time\nprint('before', flush=True)\ntime.sleep(10)", wallMs: 1000),
                                         slot: 0, onOutput: nil)
        XCTAssertTrue(slow.prestarted)
        let run = try XCTUnwrap(slow.run)
        XCTAssertTrue(run.timedOut)
        XCTAssertNil(run.waitStatus)
        XCTAssertEqual(run.stdout, "before\n")
        XCTAssertLessThan(run.wallNs, 1_100_000_000, "killed \(run.wallNs / 1_000_000) ms after its start")

        try await backend.prepare(slot: 0, prestart: try prestartSpec(cfg))
        let flood = try await backend.run(try job(cfg, "while True:\n    print('y' * 99)", outputBytes: 10_000), slot: 0, onOutput: nil)
        XCTAssertTrue(flood.prestarted)
        let f = try XCTUnwrap(flood.run)
        XCTAssertTrue(f.output.truncated)
        XCTAssertEqual(f.output.keptBytes, 10_000)
        XCTAssertTrue(f.stdout.hasPrefix(String(repeating: "y", count: 99) + "\n"), f.stderr)
        XCTAssertNil(f.waitStatus, "killed at the cap")
        XCTAssertLessThan(f.wallNs, 3_000_000_000)
    }

    /// Lists every process the program can see, but itself: nothing of the launcher may be there.
    static let processes = """
        import os
        me = os.getpid()
        for p in sorted(os.listdir('/proc')):
            if p.isdigit() and int(p) != me:
                try:
                    print(p, open('/proc/%s/cmdline' % p, 'rb').read().replace(b'\\0', b' ')[:60].decode())
                except OSError:
                    pass
        """

    func test_a_crashed_launcher_or_another_language_falls_back_to_the_plain_exec_and_leaves_nothing() async throws {
        let (backend, cfg) = try await backend("t-pre-fall", size: 1)
        // The waiting interpreter dies (killed from the host, as the OOM killer would).
        try await backend.prepare(slot: 0, prestart: try prestartSpec(cfg))
        let cgroup = try await hostCgroup(backend, slot: 0)
        let launcher = try await waitFor { cgroup.execProcesses().first { Self.cmdline($0).hasPrefix("/usr/bin/python3 ") } }
        kill(launcher, SIGKILL)
        try await Task.sleep(for: .seconds(1))  // LXD ends the exec's operation; the backend's watch sees it
        let crashed = try await backend.run(try job(cfg, Self.processes, args: ["z"]), slot: 0, onOutput: nil)
        XCTAssertFalse(crashed.prestarted)
        let seen = try XCTUnwrap(crashed.run)
        XCTAssertEqual(seen.exitCode, 0, seen.stderr)
        XCTAssertEqual(seen.stdout.split(separator: "\n").count, 1, "only the container's init: \(seen.stdout)")
        XCTAssertTrue(seen.stdout.contains("init"), seen.stdout)

        // A run of another language on a slot holding python3's launcher.
        try await backend.prepare(slot: 0, prestart: try prestartSpec(cfg))
        let restored = try await hostCgroup(backend, slot: 0)
        _ = try await waitFor { restored.execProcesses().first { Self.cmdline($0).hasPrefix("/usr/bin/python3 ") } }
        var sh = try job(cfg, "echo sh $1; ls /tmp /home/sandbox", args: ["q"])
        sh.argv = ["/bin/sh", "/home/sandbox/main.sh", "q"]
        sh.fileName = "main.sh"
        sh.prestart = nil
        let other = try await backend.run(sh, slot: 0, onOutput: nil)
        XCTAssertFalse(other.prestarted)
        XCTAssertEqual(other.run?.stdout, "sh q\n/home/sandbox:\nmain.sh\n\n/tmp:\n", "no FIFO, no launcher file: \(other.run?.stderr ?? "")")

        // A memory limit below what the waiting interpreter holds already: the plain exec, under the limit.
        try await backend.prepare(slot: 0, prestart: try prestartSpec(cfg))
        let waiting = try await hostCgroup(backend, slot: 0)
        _ = try await waitFor { waiting.execProcesses().first { Self.cmdline($0).hasPrefix("/usr/bin/python3 ") } }
        try await Task.sleep(for: .milliseconds(300))  // its start-up done: its memory is charged
        var small = try job(cfg, "print('fits')")
        small.limits.memoryBytes = 2 << 20
        let tight = try await backend.run(small, slot: 0, onOutput: nil)
        XCTAssertFalse(tight.prestarted)
        XCTAssertNotEqual(tight.run?.stdout, "fits\n", "python3 does not start in 2 MiB")
    }

    /// A launcher that is its interpreter's script (`{launcher_file}`, node's way) reaches it as a
    /// file on fd 5, made and unlinked by the start script, and leaves nothing for the program: no
    /// file in /tmp, no variable. (The image has only python3, whose launcher runs as a script too.)
    func test_a_launcher_file_reaches_its_interpreter_on_fd_5_and_leaves_nothing() async throws {
        let (backend, cfg) = try await backend("t-pre-file", size: 1)
        var spec = try prestartSpec(cfg)
        spec.argv = ["/usr/bin/python3", "-u", "{launcher_file}"]
        try await backend.prepare(slot: 0, prestart: spec)
        let code = "import os, sys\nprint(sys.argv, __name__)\nprint(os.readlink('/proc/self/fd/5'))\n"
            + "print(sorted(os.listdir('/tmp')), [k for k in os.environ if 'CODESAND' in k])"
        let r = try await backend.run(try job(cfg, code, args: ["a"]), slot: 0, onOutput: nil)
        XCTAssertTrue(r.prestarted)
        XCTAssertEqual(r.run?.stdout, "['/home/sandbox/main.py', 'a'] __main__\n/tmp/.codesand-prestart.file (deleted)\n[] []\n",
                       r.run?.stderr ?? "")
    }

    /// The whole core (RunService: languages probed in a container, the planner's pre-starts, results)
    /// over the LXD backend: python3 runs paced as chat messages are find their interpreter waiting.
    func test_the_service_hands_paced_python3_runs_to_waiting_interpreters() async throws {
        guard let lxd = Self.lxd else { throw XCTSkip("no LXD") }
        let socket = try lxd.get().socket
        try await DebianImage.ensure(lxdSocket: socket, alias: Self.image)
        var cfg = try LXDFixture.config(socket: socket, prefix: "t-pre-svc")
        cfg.sandbox.lxd.image = Self.image
        cfg.poolSize = 2
        let logger = Logger(label: "lxdtest")
        let backend = try LXDBackend(config: cfg.sandbox, poolSize: 2, defaultLimits: cfg.defaultLimits, logger: logger)
        let languages = await LanguageDetector.detect(cfg.languages, backend: backend, config: cfg.sandbox, logger: logger)
        let service = RunService(config: cfg, languages: languages, backend: backend, version: "test", logger: logger)
        addTeardownBlock {
            service.stop()
            await backend.shutdown()
            for slot in 0...2 { try? await backend.pool.delete(backend.pool.name(slot)) }
        }
        XCTAssertTrue(languages.names.contains("python3"), "\(languages.names)")
        service.start()
        let ready = await service.waitUntilReady(timeout: .seconds(180))
        XCTAssertTrue(ready)
        let code = "import sys\nprint(sys.argv[1:], repr(sys.stdin.read()))\nsys.exit(4)"
        for _ in 0..<3 {
            let ready = await service.waitUntilReady(timeout: .seconds(60))  // paced: every slot restored and waiting
            XCTAssertTrue(ready)
            let r = try await service.run(RunParams(language: "python3", code: code, stdin: "in\n", args: ["x", "y z"]),
                                          peer: PeerInfo(pid: getpid(), uid: 0, gid: 0))
            XCTAssertEqual(r.stdout, "['x', 'y z'] 'in\\n'\n")
            XCTAssertEqual(r.exitCode, 4)
        }
        let counts = service.metrics.prestartCounts("python3")
        XCTAssertEqual(counts.hits, 3, "misses: \(counts.misses)")
    }

    /// The slot's container's host cgroups, as the backend reads them.
    func hostCgroup(_ backend: LXDBackend, slot: Int) async throws -> LXDHostCgroup {
        let state = try await backend.client.call(.GET, LXDPath.state(backend.pool.name(slot)))
        guard case .int(let pid) = state.metadata.objectValue?["pid"] else { throw LXDTestError("no init pid: \(state.metadata)") }
        return try XCTUnwrap(LXDHostCgroup.of(pid: Int32(pid)))
    }

    static func cmdline(_ pid: Int32) -> String {
        let bytes = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
        return String(decoding: bytes.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
    }

    func waitFor<T>(timeoutMs: Int = 10_000, _ body: () -> T?) async throws -> T {
        let end = ContinuousClock.now + .milliseconds(timeoutMs)
        while ContinuousClock.now < end {
            if let value = body() { return value }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw LXDTestError("not seen within \(timeoutMs) ms")
    }

    /// BENCHMARKS.md (LXD, pre-started): a python3 `print(1)` on the LXD backend, handed to a waiting
    /// interpreter vs exec'd the plain way, alternately in one run (the machine is shared: compare
    /// within one invocation). In the suite, 3 rounds: the alternation itself is tested (each run's
    /// output, and which way it went); CODESAND_LXD_BENCH=1 makes it the benchmark, 25 rounds (or
    /// CODESAND_LXD_BENCH_RUNS), ~2 min.
    func test_bench_prestarted_vs_plain_python3() async throws {
        let env = ProcessInfo.processInfo.environment
        let (backend, cfg) = try await backend("t-pre-bench", size: 2)
        let rounds = env["CODESAND_LXD_BENCH"] == "1" ? Int(env["CODESAND_LXD_BENCH_RUNS"] ?? "") ?? 25 : 3
        var pre: [Double] = [], plain: [Double] = [], push: [Double] = []
        let j = try job(cfg, "print(1)")
        for i in 0..<rounds {
            let spec = try prestartSpec(cfg)
            async let p0: Void = backend.prepare(slot: 0, prestart: spec)
            async let p1: Void = backend.prepare(slot: 1, prestart: nil)
            _ = try await (p0, p1)
            try await Task.sleep(for: .milliseconds(500))  // paced: the interpreter is up, as between chat messages
            let pushStart = ContinuousClock.now  // what both paths pay first: the file push alone
            try await backend.client.push(Array("print(1)".utf8), to: "/tmp/push-\(i)", in: backend.pool.name(1), uid: 1000, gid: 1000)
            push.append(Self.ms(since: pushStart))
            for slot in (i % 2 == 0 ? [0, 1] : [1, 0]) {
                let start = ContinuousClock.now
                let outcome = try await backend.run(j, slot: slot, onOutput: nil)
                let ms = Self.ms(since: start)
                XCTAssertEqual(outcome.run?.stdout, "1\n")
                XCTAssertEqual(outcome.prestarted, slot == 0)
                if slot == 0 { pre.append(ms) } else { plain.append(ms) }
            }
        }
        func p(_ xs: [Double], _ q: Double) -> String { String(format: "%.1f", xs.sorted()[Int(Double(xs.count - 1) * q)]) }
        print("lxd prestart bench (\(rounds) paced runs each): prestarted p50 \(p(pre, 0.5)) ms p90 \(p(pre, 0.9)) ms min \(p(pre, 0)) ms;"
              + " plain exec p50 \(p(plain, 0.5)) ms p90 \(p(plain, 0.9)) ms min \(p(plain, 0)) ms; file push alone p50 \(p(push, 0.5)) ms")
    }

    static func ms(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }
}
