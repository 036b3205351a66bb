import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The real `codesandd` binary as an admin runs it: socket activation, sd_notify, SIGTERM with
/// runs in flight, config errors, metrics.
final class DaemonProcessTests: XCTestCase {
    var dir = ""
    var cgName = ""

    override func setUp() async throws {
        try requireRoot()
        cgName = "codesand-dtest-\(getpid())-\(UInt32.random(in: 0...99_999))"
        dir = "/tmp/\(cgName)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // Its own cgroups, state dir and uids: never collides with another daemon on this machine.
        let uidBase = 2_146_000_000 + UInt32.random(in: 0...99_999) * 8
        try """
        [pool]
        size = 2
        spare = 0
        [sandbox]
        cgroup_name = "\(cgName)"
        state_dir = "\(dir)/state"
        uid_base = \(uidBase)
        [limits.max]
        wall_ms = 5000
        """.write(toFile: "\(dir)/config.toml", atomically: true, encoding: .utf8)
    }

    override func tearDown() async throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    var daemon: String { productsDirectory() + "/codesandd" }

    func startDaemon(environment: [String: String] = [:]) throws -> (TestProcess, String) {
        let sock = "\(dir)/codesand.sock"
        let p = try TestProcess([daemon, "--config", "\(dir)/config.toml", "--socket", sock], environment: environment,
                                log: "\(dir)/daemon.log")
        XCTAssertTrue(waitForSocket(sock), "no socket: \(p.log)")
        return (p, sock)
    }

    func runLine(_ id: Int, _ code: String) -> String {
        let json = String(decoding: try! JSONEncoder().encode(code), as: UTF8.self)
        return #"{"jsonrpc":"2.0","id":\#(id),"method":"run","params":{"language":"python3","code":\#(json)}}"#
    }

    func test_socket_activation_serves_a_run_on_the_passed_fd() throws {
        let sock = "\(dir)/act.sock"
        let p = try TestProcess(["/usr/bin/systemd-socket-activate", "-l", sock, daemon, "--config", "\(dir)/config.toml"],
                                log: "\(dir)/act.log")
        XCTAssertTrue(waitForSocket(sock), p.log)
        let c = try RawClient(path: sock, timeoutSeconds: 30)
        XCTAssertEqual(result(c.call(runLine(1, "print(41+1)")))?["stdout"] as? String, "42\n", p.log)
        XCTAssertTrue(p.log.contains("socket passed by systemd"), p.log)
        kill(-p.pid, SIGTERM)
        XCTAssertNotNil(p.wait(timeout: 15))
    }

    func test_notify_socket_receives_ready_then_stopping_and_the_exit_is_clean() throws {
        let notify = try NotifySocket(path: "\(dir)/notify.sock")
        let (p, _) = try startDaemon(environment: ["NOTIFY_SOCKET": notify.path])
        XCTAssertTrue(notify.next()?.contains("READY=1") == true, p.log)
        p.signal(SIGTERM)
        XCTAssertNotNil(notify.wait(for: "STOPPING=1"), p.log)
        let status = p.wait(timeout: 20)
        XCTAssertEqual(status, 0, p.log)
    }

    func test_sigterm_with_runs_in_flight_answers_them_all_and_leaves_nothing() throws {
        let (p, sock) = try startDaemon()
        let c = try RawClient(path: sock, timeoutSeconds: 30)
        // Two runs fill the pool of two; a third waits for a sandbox; a fourth comes after SIGTERM.
        for i in 1...3 { c.send(runLine(i, "import time; time.sleep(1); print('done \(i)')") + "\n") }
        usleep(300_000)
        p.signal(SIGTERM)
        usleep(100_000)
        c.send(runLine(9, "print('too late')") + "\n")
        var replies: [Int: [String: Any]] = [:]
        while replies.count < 4, let line = c.readJSON() as? [String: Any] { replies[line["id"] as? Int ?? -1] = line }
        // Which of the three waits for a sandbox is up to the scheduler: two ran to the end, one was refused.
        let ran = (1...3).filter { result(replies[$0])?["stdout"] as? String == "done \($0)\n" }
        let refused = (1...3).filter { errorCode(replies[$0]) == -32003 }
        XCTAssertEqual(ran.count, 2, "\(replies)")
        XCTAssertEqual(refused.count, 1, "the queued one is refused: \(replies)")
        XCTAssertEqual(errorCode(replies[9]), -32003, "\(replies)")
        XCTAssertEqual(p.wait(timeout: 20), 0, p.log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/sys/fs/cgroup/freezer/\(cgName)/slot-0"), "slot cgroup left behind")
        XCTAssertEqual(sandboxUserProcesses(matching: "time.sleep(1)"), [])
    }

    func test_sigterm_answers_the_running_run_and_refuses_the_queued_one() throws {
        try "[pool]\nsize = 1\nspare = 0\n[sandbox]\ncgroup_name = \"\(cgName)\"\nstate_dir = \"\(dir)/state\"\nuid_base = 2145000000\n[limits.default]\nwall_ms = 1000\n[limits.max]\nwall_ms = 1000\n"
            .write(toFile: "\(dir)/config.toml", atomically: true, encoding: .utf8)
        let (p, sock) = try startDaemon()
        let c = try RawClient(path: sock, timeoutSeconds: 30)
        // The pool has one slot: the first run holds it past the SIGTERM, the second waits for it.
        c.send(#"{"jsonrpc":"2.0","id":1,"method":"run","params":{"language":"bash","code":"sleep 0.8; echo ok"}}"# + "\n")
        usleep(150_000)
        c.send(#"{"jsonrpc":"2.0","id":2,"method":"run","params":{"language":"bash","code":"echo queued"}}"# + "\n")
        usleep(200_000)
        p.signal(SIGTERM)
        var replies: [Int: [String: Any]] = [:]
        while replies.count < 2, let line = c.readJSON() as? [String: Any] { replies[line["id"] as? Int ?? -1] = line }
        XCTAssertEqual(result(replies[1])?["stdout"] as? String, "ok\n", "\(replies)")
        XCTAssertEqual(errorCode(replies[2]), -32003, "\(replies)\n\(p.log)")
        XCTAssertEqual(p.wait(timeout: 20), 0, p.log)
    }

    /// The graceful stop as systemd sees it: the watchdog pings on through the drain (a long one is
    /// not taken for a hang), a second SIGTERM and a SIGINT during the grace change nothing, the run
    /// in flight gets its result, and every sandbox is gone at exit 0.
    func test_second_sigterm_during_the_grace_changes_nothing_and_the_watchdog_pings_through_the_drain() throws {
        let notify = try NotifySocket(path: "\(dir)/notify.sock")
        let (p, sock) = try startDaemon(environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"])
        XCTAssertNotNil(notify.wait(for: "READY=1"), p.log)
        XCTAssertNotNil(notify.wait(for: "WATCHDOG=1"), p.log)
        let c = try RawClient(path: sock, timeoutSeconds: 30)
        c.send(runLine(1, "import time; time.sleep(2); print('finished')") + "\n")
        usleep(300_000)
        p.signal(SIGTERM)
        XCTAssertNotNil(notify.wait(for: "STOPPING=1"), p.log)
        usleep(300_000)
        p.signal(SIGTERM)
        p.signal(SIGINT)
        XCTAssertNotNil(notify.wait(for: "WATCHDOG=1"), "no ping during the drain: \(p.log)")
        let reply = c.readJSON() as? [String: Any]
        XCTAssertEqual(result(reply)?["stdout"] as? String, "finished\n", "\(reply ?? [:])\n\(p.log)")
        XCTAssertEqual(p.wait(timeout: 20), 0, p.log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/sys/fs/cgroup/freezer/\(cgName)/slot-0"), "slot cgroup left behind")
        XCTAssertEqual(sandboxUserProcesses(matching: "time.sleep(2)"), [])
    }

    /// SIGTERM while a SIGHUP's reload is under way: the reload ends first (READY=1 after
    /// RELOADING=1, as systemd expects), then the daemon stops cleanly.
    func test_sigterm_during_a_reload_lets_it_end_then_stops_cleanly() throws {
        let notify = try NotifySocket(path: "\(dir)/notify.sock")
        let (p, _) = try startDaemon(environment: ["NOTIFY_SOCKET": notify.path])
        XCTAssertNotNil(notify.wait(for: "READY=1"), p.log)
        p.signal(SIGHUP)
        XCTAssertNotNil(notify.wait(for: "RELOADING=1"), p.log)
        p.signal(SIGTERM)
        let untilStop = notify.wait(for: "STOPPING=1") ?? []
        XCTAssertEqual(untilStop.first?.contains("READY=1"), true, "the reload did not end before the stop: \(untilStop)")
        XCTAssertEqual(p.wait(timeout: 30), 0, p.log)
        let log = p.log
        let reloaded = log.range(of: "configuration reloaded"), stopping = log.range(of: "stopping:")
        XCTAssertNotNil(reloaded, log)
        XCTAssertNotNil(stopping, log)
        if let reloaded, let stopping { XCTAssertLessThan(reloaded.lowerBound, stopping.lowerBound, log) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/sys/fs/cgroup/freezer/\(cgName)/slot-0"), "slot cgroup left behind")
    }

    /// The socket appears only once SIGTERM is trapped: a SIGTERM the moment it accepts is a clean
    /// stop, never the signal's default action (death, sandboxes left behind).
    func test_sigterm_as_soon_as_the_socket_accepts_is_a_clean_stop() throws {
        for round in 1...2 {
            let (p, _) = try startDaemon()
            p.signal(SIGTERM)
            XCTAssertEqual(p.wait(timeout: 20), 0, "round \(round): \(p.log)")
            XCTAssertTrue(p.log.contains("stopped"), p.log)
        }
    }

    /// SIGTERM while the daemon is still starting (its cgroups exist, the socket not yet): a clean
    /// stop once it is up, never the signal's default action (death, sandboxes left behind).
    func test_sigterm_during_start_up_is_a_clean_stop() throws {
        let p = try TestProcess([daemon, "--config", "\(dir)/config.toml", "--socket", "\(dir)/codesand.sock"],
                                log: "\(dir)/daemon.log")
        XCTAssertTrue(CgroupDetectProbe.wait { FileManager.default.fileExists(atPath: "/sys/fs/cgroup/freezer/\(cgName)") }, p.log)
        p.signal(SIGTERM)
        XCTAssertEqual(p.wait(timeout: 30), 0, p.log)
        XCTAssertTrue(p.log.contains("stopped"), p.log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/sys/fs/cgroup/freezer/\(cgName)/slot-0"), "slot cgroup left behind")
    }

    func test_check_config_rejects_a_wrong_type_naming_the_key() throws {
        try "[pool]\nsize = \"many\"\n".write(toFile: "\(dir)/bad.toml", atomically: true, encoding: .utf8)
        let p = try TestProcess([daemon, "--check-config", "--config", "\(dir)/bad.toml"], log: "\(dir)/check.log")
        XCTAssertEqual(p.wait(timeout: 20).map { ($0 >> 8) & 0xff }, 1)
        XCTAssertTrue(p.log.contains("pool.size"), p.log)
        try "[limits.default]\nwall_ms = -5\n".write(toFile: "\(dir)/bad2.toml", atomically: true, encoding: .utf8)
        let q = try TestProcess([daemon, "--check-config", "--config", "\(dir)/bad2.toml"], log: "\(dir)/check2.log")
        XCTAssertEqual(q.wait(timeout: 20).map { ($0 >> 8) & 0xff }, 1)
        XCTAssertTrue(q.log.contains("limits.default.wall_ms"), q.log)
        let ok = try TestProcess([daemon, "--check-config", "--config", "\(dir)/config.toml"], log: "\(dir)/check3.log")
        XCTAssertEqual(ok.wait(timeout: 20), 0, ok.log)
    }

    func test_metrics_parse_as_prometheus_text_and_count_the_runs() throws {
        let (p, sock) = try startDaemon()
        let c = try RawClient(path: sock)
        for i in 1...3 { XCTAssertEqual(result(c.call(runLine(i, "print(\(i))")))?["exit_code"] as? Int, 0) }
        XCTAssertNotNil(result(c.call(runLine(4, "import sys; sys.exit(3)"))))
        let text = c.call(#"{"jsonrpc":"2.0","id":5,"method":"metrics"}"#)?["result"] as? String ?? ""
        try text.write(toFile: "\(dir)/metrics.txt", atomically: true, encoding: .utf8)
        let script = """
        import sys
        from prometheus_client.parser import text_string_to_metric_families
        runs = {}
        for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
            for s in fam.samples:
                if s.name == 'codesand_runs_total':
                    runs[s.labels['status']] = s.value
        print(runs.get('ok'), runs.get('error'))
        """
        try script.write(toFile: "\(dir)/parse.py", atomically: true, encoding: .utf8)
        let parse = try TestProcess(["/usr/bin/python3", "\(dir)/parse.py", "\(dir)/metrics.txt"], log: "\(dir)/parse.log")
        XCTAssertEqual(parse.wait(timeout: 30), 0, parse.log)
        XCTAssertEqual(parse.log, "3.0 1.0\n", text)
        p.signal(SIGTERM)
        XCTAssertEqual(p.wait(timeout: 20), 0)
    }

    /// `codesand bench` against the real daemon: both sides measured at each level, every reply
    /// checked, the abusive mix reported apart, the pause recorded, and the daemon left clean.
    func test_bench_measures_daemon_and_bare_runs_side_by_side() throws {
        let (p, sock) = try startDaemon()
        let bench = try TestProcess([productsDirectory() + "/codesand", "bench", "--socket", sock, "-n", "8", "-c", "1,2",
                                     "--warmup", "2", "--abuse", "25", "--pause-ms", "5", "--json"], log: "\(dir)/bench.log")
        XCTAssertEqual(bench.wait(timeout: 120), 0, bench.log)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bench.log.utf8)) as? [String: Any], bench.log)
        XCTAssertEqual(report["ok"] as? Bool, true, "\(report["failures"] ?? "")")
        XCTAssertEqual(report["pause_ms"] as? Int, 5)
        let levels = try XCTUnwrap(report["levels"] as? [[String: Any]])
        XCTAssertEqual(levels.map { $0["concurrency"] as? Int }, [1, 2])
        for level in levels {
            let bare = try XCTUnwrap(level["bare"] as? [String: Any]), daemon = try XCTUnwrap(level["daemon"] as? [String: Any])
            XCTAssertEqual(bare["n"] as? Int, 8)
            XCTAssertEqual(daemon["n"] as? Int, 6, "25% of the 8 daemon runs were abusive, reported apart")
            XCTAssertGreaterThan(daemon["runs_per_s"] as? Double ?? 0, 0)
            XCTAssertNotNil((level["ratio"] as? [String: Any])?["throughput"] as? Double)
            // With abusive runs in the mix, the machine's CPU is not a benign run's: not reported.
            XCTAssertNil(bare["machine_cpu_ms_per_run"])
            XCTAssertNil(daemon["machine_cpu_ms_per_run"])
            let abuse = try XCTUnwrap(level["abuse"] as? [[String: Any]])
            XCTAssertEqual(abuse.reduce(0) { $0 + ($1["n"] as? Int ?? 0) }, 2)
            XCTAssertEqual(level["daemon_failures"] as? Int, 0)
        }
        p.signal(SIGTERM)
        XCTAssertEqual(p.wait(timeout: 20), 0)
    }

    /// --sustained times each daemon phase until the pool is at rest again: its throughput can only
    /// be lower than the phase's own, and the report says how it was measured.
    func test_bench_sustained_counts_the_pools_preparation_after_each_phase() throws {
        let (p, sock) = try startDaemon()
        let bench = try TestProcess([productsDirectory() + "/codesand", "bench", "--socket", sock, "-l", "bash", "--code", "echo 1",
                                     "-n", "2", "-c", "1", "--warmup", "0", "--sustained", "--json"], log: "\(dir)/bench.log")
        // 2 rounds, 3 waits each (after the bare phase, before and after the daemon's), each capped
        // at 20 s on a machine that never goes idle.
        XCTAssertEqual(bench.wait(timeout: 200), 0, bench.log)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bench.log.utf8)) as? [String: Any], bench.log)
        XCTAssertEqual(report["sustained"] as? Bool, true)
        let level = try XCTUnwrap((report["levels"] as? [[String: Any]])?.first)
        let daemon = try XCTUnwrap(level["daemon"] as? [String: Any])
        let n = try XCTUnwrap(daemon["n"] as? Int), elapsed = try XCTUnwrap(daemon["elapsed_s"] as? Double)
        let meanMs = try XCTUnwrap(daemon["mean_ms"] as? Double), rest = try XCTUnwrap(level["rest_wait_s"] as? Double)
        XCTAssertEqual(n, 2)
        // After each of the 2 daemon phases the bench waited for the slot's teardown and preparation
        // (the idle window after it not counted), and that wait is in the phases' time: at least
        // the runs' own time plus the waits.
        XCTAssertGreaterThan(rest, 0, "\(level)")
        // The machine's CPU per run of each mode (ticks of 10 ms: a few runs may read 0).
        let bare = try XCTUnwrap(level["bare"] as? [String: Any])
        XCTAssertGreaterThanOrEqual(bare["machine_cpu_ms_per_run"] as? Double ?? -1, 0)
        XCTAssertGreaterThanOrEqual(daemon["machine_cpu_ms_per_run"] as? Double ?? -1, 0)
        XCTAssertNotNil((level["ratio"] as? [String: Any])?["added_cpu_ms_per_run"] as? Double)
        XCTAssertGreaterThanOrEqual(elapsed, rest + 0.9 * meanMs * Double(n) / 1000, "\(level)")
        p.signal(SIGTERM)
        XCTAssertEqual(p.wait(timeout: 20), 0)
    }

    /// Every signal reaches the daemon whichever of its threads the kernel picks: SIGHUP re-reads
    /// the config (and it serves on), SIGINT stops it cleanly.
    func test_sighup_reloads_and_sigint_stops() throws {
        let (p, sock) = try startDaemon()
        for round in 1...3 {
            p.signal(SIGHUP)
            XCTAssertTrue(CgroupDetectProbe.wait { p.log.components(separatedBy: "configuration reloaded").count > round }, p.log)
        }
        let c = try RawClient(path: sock)
        XCTAssertEqual(result(c.call(runLine(1, "print(1)")))?["stdout"] as? String, "1\n")
        p.signal(SIGINT)
        XCTAssertEqual(p.wait(timeout: 20), 0, p.log)
    }

    func test_systemd_units_verify() throws {
        // The units cgName the installed binary; verify a copy that names the one just built.
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for unit in ["codesand.socket", "codesand.service"] {
            let text = try String(contentsOfFile: source.path + "/systemd/\(unit)", encoding: .utf8)
                .replacingOccurrences(of: "/usr/local/bin/codesandd", with: daemon)
            try text.write(toFile: "\(dir)/\(unit)", atomically: true, encoding: .utf8)
        }
        let p = try TestProcess(["/usr/bin/systemd-analyze", "verify", "\(dir)/codesand.socket", "\(dir)/codesand.service"],
                                log: "\(dir)/verify.log")
        XCTAssertEqual(p.wait(timeout: 60), 0, p.log)
        XCTAssertFalse(p.log.contains("codesand"), "warnings about the units: \(p.log)")
    }
}
