import CodesandCore
import CodesandProtocol
import XCTest

/// The core acceptance lines, on real sandboxes through RunService and the native backend.
final class CoreRunTests: XCTestCase {
    var live: LiveService!

    override func setUp() async throws {
        try requireRoot()
        live = try await LiveService()
        await live.waitUntilReady()
    }

    override func tearDown() async throws {
        live?.shutdown()
    }

    func test_print_1_is_ok_with_exit_code_0() async throws {
        let r = try await live.run("python3", "print(1)")
        XCTAssertEqual(r.stdout, "1\n")
        XCTAssertEqual(r.exitCode, 0)
        XCTAssertEqual(r.status, .ok)
        XCTAssertEqual(r.output, [OutputChunk(stream: .stdout, text: "1\n")])
        XCTAssertGreaterThan(r.memoryPeakBytes, 0)
    }

    func test_busy_loop_times_out_within_its_wall_limit_and_leaves_the_cgroup_empty() async throws {
        let (r, secs) = try await elapsed { try await live.run("python3", "while True: pass", limits: RunLimits(wallMs: 1000)) }
        XCTAssertTrue(r.timedOut)
        XCTAssertEqual(r.status, .timeout)
        XCTAssertNil(r.exitCode)
        XCTAssertLessThan(secs, 1.5)
        let leftovers = await live.leftoverPids()
        XCTAssertEqual(leftovers, [])
    }

    func test_bash_fork_bomb_is_answered_in_time_and_leaves_nothing() async throws {
        let (r, secs) = try await elapsed { try await live.run("bash", ":(){ :|:& };:", limits: RunLimits(wallMs: 2000)) }
        XCTAssertLessThan(secs, 3.0)
        _ = r
        let leftovers = await live.leftoverPids()
        XCTAssertEqual(leftovers, [])
        XCTAssertEqual(sandboxUserProcesses(matching: ":|:&"), [])
        let next = try await live.run("python3", "print(2)")
        XCTAssertEqual(next.stdout, "2\n")
    }

    func test_memory_bomb_is_oom_killed() async throws {
        let r = try await live.run("python3", "x = bytearray(1<<30)\nprint(len(x))", limits: RunLimits(memoryBytes: 64 << 20))
        XCTAssertTrue(r.oomKilled)
        XCTAssertEqual(r.status, .oom)
        XCTAssertEqual(r.stdout, "")
    }

    func test_output_flood_is_truncated_at_output_bytes() async throws {
        let r = try await live.run("python3", "print('x'*10_000_000)", limits: RunLimits(outputBytes: 4096))
        XCTAssertTrue(r.truncated)
        XCTAssertEqual(r.stdout.utf8.count, 4096)
    }

    func test_endless_output_is_cut_and_the_run_killed() async throws {
        let (r, secs) = try await elapsed { try await live.run("bash", "yes", limits: RunLimits(wallMs: 10_000)) }
        XCTAssertTrue(r.truncated)
        XCTAssertEqual(r.status, .outputLimit)
        XCTAssertLessThan(secs, 5)
    }

    func test_output_lines_cap() async throws {
        let r = try await live.run("python3", "for i in range(3000): print(i)", limits: RunLimits(outputLines: 10))
        XCTAssertTrue(r.truncated)
        XCTAssertEqual(r.stdout, (0..<10).map { "\($0)\n" }.joined())
    }

    func test_network_connection_fails_inside() async throws {
        let r = try await live.run("python3", "import socket\nsocket.create_connection(('1.1.1.1',80),timeout=2)\nprint('CONNECTED')")
        XCTAssertFalse(r.stdout.contains("CONNECTED"))
        XCTAssertNotEqual(r.exitCode, 0)
    }

    func test_loopback_works_inside() async throws {
        let code = "import socket\ns=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()\nc=socket.create_connection(s.getsockname()); print('ok')"
        let r = try await live.run("python3", code)
        XCTAssertEqual(r.stdout, "ok\n", r.stderr)
    }

    func test_a_file_written_in_one_run_is_absent_in_the_next() async throws {
        _ = try await live.run("python3", "import os\nopen(os.path.expanduser('~/marker'),'w').write('x')\nopen('/tmp/marker','w').write('x')")
        let r = try await live.run("python3", "import os\nprint(os.path.exists(os.path.expanduser('~/marker')), os.path.exists('/tmp/marker'))")
        XCTAssertEqual(r.stdout, "False False\n")
    }

    func test_stdin_args_exit_code_and_stderr() async throws {
        let r = try await live.run("python3", "import sys\nprint(sys.stdin.read().upper(), sys.argv[1:])\nsys.exit('bad')",
                                   stdin: "hello", args: ["a b", "; rm -rf /"])
        XCTAssertEqual(r.stdout, "HELLO ['a b', '; rm -rf /']\n")
        XCTAssertEqual(r.stderr, "bad\n")
        XCTAssertEqual(r.exitCode, 1)
        XCTAssertEqual(r.status, .error)
    }

    func test_no_stdin_means_eof() async throws {
        let r = try await live.run("bash", "read x; echo rc=$?")
        XCTAssertEqual(r.stdout, "rc=1\n")
    }

    func test_a_segfault_is_reported_as_a_signal() async throws {
        let r = try await live.run("python3", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)")
        XCTAssertEqual(r.status, .signal)
        XCTAssertEqual(r.signal, "SIGSEGV")
        XCTAssertNil(r.exitCode)
    }

    func test_cpu_limit_stops_a_busy_program_before_the_wall_limit() async throws {
        let (r, secs) = try await elapsed {
            try await live.run("python3", "while True: pass", limits: RunLimits(wallMs: 10_000, cpuMs: 500))
        }
        XCTAssertTrue(r.timedOut)
        XCTAssertLessThan(secs, 3)
        XCTAssertGreaterThanOrEqual(r.cpuMs, 500)
    }

    func test_the_program_runs_as_an_unprivileged_uid_on_host_sandbox() async throws {
        let r = try await live.run("bash", "id -u; hostname; pwd; cat /proc/self/status | grep NoNewPrivs")
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 4, r.stdout + r.stderr)
        XCTAssertGreaterThanOrEqual(UInt32(lines[0]) ?? 0, live.config.sandbox.uidBase)
        XCTAssertEqual(lines[1], "sandbox")
        XCTAssertEqual(String(lines[2]), live.config.sandbox.home)
        XCTAssertTrue(lines[3].hasSuffix("1"))
    }

    func test_setsid_daemon_does_not_delay_the_reply_or_survive() async throws {
        let (r, secs) = try await elapsed {
            try await live.run("bash", "setsid sh -c 'sleep 300' >/dev/null 2>&1 < /dev/null & echo started")
        }
        XCTAssertEqual(r.stdout, "started\n")
        XCTAssertLessThan(secs, 3)
        let leftovers = await live.leftoverPids()
        XCTAssertEqual(leftovers, [])
    }

    func test_a_background_child_holding_stdout_does_not_delay_the_reply() async throws {
        let (r, secs) = try await elapsed { try await live.run("bash", "(sleep 300 &); echo hi") }
        XCTAssertEqual(r.stdout, "hi\n")
        XCTAssertLessThan(secs, 3)
    }

    func test_output_flushed_before_a_timeout_is_returned() async throws {
        let r = try await live.run("python3", "print('before', flush=True)\nimport time; time.sleep(100)", limits: RunLimits(wallMs: 1000))
        XCTAssertEqual(r.stdout, "before\n")
        XCTAssertTrue(r.timedOut)
    }

    func test_concurrent_runs_use_separate_sandboxes() async throws {
        let live = self.live!
        let results = try await withThrowingTaskGroup(of: RunResult.self) { group in
            for i in 0..<6 { group.addTask { try await live.run("python3", "print(\(i) * 2)") } }
            var out: [RunResult] = []
            for try await r in group { out.append(r) }
            return out
        }
        XCTAssertEqual(Set(results.map(\.stdout)), Set((0..<6).map { "\($0 * 2)\n" }))
    }

    func test_limits_above_the_maximum_are_invalid_params() async throws {
        do {
            _ = try await live.run("python3", "print(1)", limits: RunLimits(wallMs: 10_000_000))
            XCTFail("expected -32602")
        } catch let e as RPCError {
            XCTAssertEqual(e.code, -32602)
            XCTAssertTrue(e.message.contains("wall_ms"))
        }
    }
}
