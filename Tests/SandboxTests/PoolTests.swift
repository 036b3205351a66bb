import CodesandCore
import CodesandProtocol
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The warm pool on real sandboxes: resets leave nothing behind, bursts are all answered,
/// broken slots recover, a killed daemon's leftovers are cleaned at the next start.
final class PoolTests: XCTestCase {
    override func setUp() async throws {
        try requireRoot()
    }

    func test_nothing_of_run_1_reaches_run_2_on_the_same_slot() async throws {
        let live = try await LiveService(pool: 1)
        defer { live.shutdown() }
        await live.waitUntilReady()
        let first = """
        import ctypes, os, subprocess
        open(os.path.expanduser('~/left'), 'w').write('x')
        open('/dev/shm/left', 'w').write('x')
        libc = ctypes.CDLL(None, use_errno=True)
        print('shm', libc.shmget(0x5eed, 4096, 0o1666) >= 0)
        subprocess.Popen(['setsid', 'sleep', '300'])
        """
        let r1 = try await live.run("python3", first, limits: RunLimits(memoryBytes: 32 << 20))
        XCTAssertEqual(r1.stdout, "shm True\n", r1.stderr)
        let second = """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        print(os.path.exists(os.path.expanduser('~/left')), os.listdir('/dev/shm'), libc.shmget(0x5eed, 0, 0) >= 0)
        print(sorted(open(f'/proc/{p}/comm').read().strip() for p in os.listdir('/proc') if p.isdigit()))
        x = bytearray(100 << 20)  # above run 1's 32 MiB limit, below the default
        print('allocated', len(x) >> 20)
        """
        let r2 = try await live.run("python3", second)
        XCTAssertEqual(r2.stdout, "False [] False\n['codesand-init', 'python3']\nallocated 100\n", r2.stderr)
    }

    func test_a_burst_of_pool_size_plus_20_requests_is_all_answered() async throws {
        let live = try await LiveService(pool: 2) { $0.queueMax = 10 }
        defer { live.shutdown() }
        await live.waitUntilReady()
        let outcomes = await withTaskGroup(of: String.self) { group in
            for i in 0..<22 {
                group.addTask {
                    do {
                        let r = try await live.run("python3", "import time; time.sleep(0.05); print(\(i))")
                        return r.stdout == "\(i)\n" ? "ok" : "wrong: \(r.stdout)"
                    } catch let e as RPCError {
                        return e.code == -32002 ? "busy" : "error \(e.code)"
                    } catch {
                        return "error \(error)"
                    }
                }
            }
            var all: [String] = []
            for await o in group { all.append(o) }
            return all
        }
        XCTAssertEqual(outcomes.count, 22)
        XCTAssertTrue(outcomes.allSatisfy { $0 == "ok" || $0 == "busy" }, "\(outcomes)")
        XCTAssertEqual(outcomes.filter { $0 == "ok" }.count, 12, "two running and ten queued are served: \(outcomes)")
        let status = live.service.status()
        XCTAssertEqual(status.runsTotal, 12)
        XCTAssertEqual(status.queued, 0)
    }

    func test_a_slot_whose_preparation_fails_is_broken_and_recovers_when_the_cause_goes_away() async throws {
        let live = try await LiveService(pool: 1)
        defer { live.shutdown() }
        await live.waitUntilReady()
        let root = live.config.sandbox.stateDir + "/root"
        XCTAssertEqual(rmdir(root), 0)  // the mount point of every new sandbox's root
        _ = try await live.run("python3", "print(1)")  // its slot's reset now fails
        var waited = 0
        while live.service.status().slots["broken"] != 1 && waited < 500 { try await Task.sleep(for: .milliseconds(10)); waited += 1 }
        XCTAssertEqual(live.service.status().slots["broken"], 1)
        XCTAssertGreaterThan(live.service.status().slotFailures, 0)
        // No slot can come back by itself now: the next run fails at once, naming the cause.
        do {
            _ = try await live.run("python3", "print(1)")
            XCTFail("a run was answered without a sandbox")
        } catch let e as RPCError {
            XCTAssertEqual(e.code, RPCErrorCode.internalError.rawValue, e.message)
            XCTAssertTrue(e.message.contains("mount point \(root) is gone"), e.message)
        }
        XCTAssertEqual(mkdir(root, 0o755), 0)
        // The slot tries again by itself at the end of its back-off (0.1 s, doubling): no reload needed.
        waited = 0
        while live.service.status().slots["ready"] != 1 && waited < 1500 { try await Task.sleep(for: .milliseconds(10)); waited += 1 }
        let r = try await live.run("python3", "print('recovered')")
        XCTAssertEqual(r.stdout, "recovered\n")
    }

    /// One run at once, two slots: a run that sleeps gives its turn back after ~100 ms idle, so a
    /// request behind it runs meanwhile instead of waiting for the sleep to end.
    func test_a_sleeping_run_gives_its_turn_to_a_waiting_request() async throws {
        let live = try await LiveService(pool: 2) { $0.maxRunning = 1 }
        defer { live.shutdown() }
        await live.waitUntilReady()
        async let sleeper = live.run("bash", "sleep 2; echo slept")
        try await Task.sleep(for: .milliseconds(300))
        let (quick, secs) = try await elapsed { try await live.run("bash", "echo quick") }
        XCTAssertEqual(quick.stdout, "quick\n")
        XCTAssertLessThan(secs, 1.0, "waited for the sleeping run's turn")
        let slept = try await sleeper
        XCTAssertEqual(slept.stdout, "slept\n")
        // A busy one keeps its turn: the next request waits for it.
        async let spinner = live.run("python3", "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass\nprint('spun')")
        try await Task.sleep(for: .milliseconds(300))
        let (_, waited) = try await elapsed { try await live.run("bash", "echo after") }
        XCTAssertGreaterThan(waited, 0.8, "a busy run kept its turn")
        let spun = try await spinner
        XCTAssertEqual(spun.stdout, "spun\n")
    }

    /// What `codesand soak` relies on: status names the daemon and counts a process in a ready
    /// slot's cgroup that is not its sandbox's own (as if a run's process had survived its sandbox).
    func test_status_counts_a_process_left_in_a_ready_slots_cgroup_as_stray() async throws {
        let live = try await LiveService(pool: 1)
        defer { live.shutdown() }
        await live.waitUntilReady()
        let before = live.service.status()
        XCTAssertEqual(before.pid, getpid())
        XCTAssertEqual(before.strayProcesses, 0)
        let parents = try XCTUnwrap(before.sandboxCgroups)
        let parent = try XCTUnwrap(parents.first { $0.contains("/freezer/") } ?? parents.first, "\(parents)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: parent + "/slot-0"), parent)
        let intruder = try TestProcess(["/bin/sleep", "300"], log: "/dev/null")
        defer { intruder.signal(SIGKILL); _ = intruder.wait(timeout: 10) }
        try "\(intruder.pid)".write(toFile: parent + "/slot-0/cgroup.procs", atomically: false, encoding: .utf8)
        XCTAssertEqual(live.service.status().strayProcesses, 1)
    }

    func test_kill_9_of_the_daemon_during_runs_then_a_restart_leaves_nothing_and_serves() throws {
        let dir = "/tmp/codesand-k9-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let name = "codesand-k9-\(getpid())"
        try "[pool]\nsize = 3\nspare = 0\n[sandbox]\ncgroup_name = \"\(name)\"\nstate_dir = \"\(dir)/state\"\nuid_base = 2144000000\n"
            .write(toFile: "\(dir)/config.toml", atomically: true, encoding: .utf8)
        let daemon = productsDirectory() + "/codesandd"
        let sock = "\(dir)/s.sock"
        let first = try TestProcess([daemon, "--config", "\(dir)/config.toml", "--socket", sock], log: "\(dir)/1.log")
        XCTAssertTrue(waitForSocket(sock), first.log)
        let c = try RawClient(path: sock)
        // The python3 zygote (and the sandboxes it spawned, whose command line is its own) must not
        // outlive the daemon either.
        XCTAssertEqual(result(c.call(#"{"jsonrpc":"2.0","id":9,"method":"run","params":{"language":"python3","code":"print(1)"}}"#))?["stdout"] as? String, "1\n")
        // Its zygote and the inits it spawned are the daemon's children; their interpreters, its grandchildren.
        let zygoteFamily = Set(hostProcesses(matching: "libCodesandZygote.so").filter { pid in
            parentPID(pid) == first.pid || parentPID(parentPID(pid) ?? 0) == first.pid
        })
        XCTAssertFalse(zygoteFamily.isEmpty, "no zygote: \(first.log)")
        for i in 1...2 {
            c.send(#"{"jsonrpc":"2.0","id":\#(i),"method":"run","params":{"language":"bash","code":"setsid sleep 4321 & for i in $(seq 20); do sleep 4323 & done; sleep 4322"}}"# + "\n")
        }
        // And a python3 run: its init is the zygote's clone (CLONE_PARENT), its interpreter a zygote fork.
        c.send(#"{"jsonrpc":"2.0","id":3,"method":"run","params":{"language":"python3","code":"import subprocess, time\nps = [subprocess.Popen(['sleep', '4325']) for _ in range(5)]\ntime.sleep(4322)"}}"# + "\n")
        XCTAssertTrue(CgroupDetectProbe.wait {
            sandboxUserProcesses(matching: "sleep 4323").count == 40 && sandboxUserProcesses(matching: "sleep 4322").count == 2
                && sandboxUserProcesses(matching: "sleep 4325").count == 5
        }, first.log)
        first.signal(SIGKILL)
        XCTAssertNotNil(first.wait(timeout: 10))
        // Each init dies with the daemon (PR_SET_PDEATHSIG), and its pid namespace with it; the
        // zygote too. Nothing waits for a new daemon to clean up.
        XCTAssertTrue(CgroupDetectProbe.wait(timeout: 0.1) {
            sandboxUserProcesses(matching: "sleep 432").isEmpty && zygoteFamily.isDisjoint(with: hostProcesses(matching: "libCodesandZygote.so"))
        }, "100 ms after the daemon's death: \(sandboxUserProcesses(matching: "sleep 432").count) snippet processes, zygote family \(zygoteFamily.intersection(hostProcesses(matching: "libCodesandZygote.so")))")

        let second = try TestProcess([daemon, "--config", "\(dir)/config.toml", "--socket", sock], log: "\(dir)/2.log")
        defer { second.signal(SIGTERM); _ = second.wait(timeout: 20) }
        XCTAssertTrue(waitForSocket(sock), second.log)
        guard let d = try? RawClient(path: sock) else { return XCTFail("cannot connect: \(second.log)") }
        XCTAssertEqual(result(d.call(#"{"jsonrpc":"2.0","id":1,"method":"run","params":{"language":"python3","code":"print(1)"}}"#))?["stdout"] as? String, "1\n")
        XCTAssertEqual(sandboxUserProcesses(matching: "sleep 432"), [], "leftovers of the killed daemon survived its restart: \(second.log)")
        XCTAssertTrue(CgroupDetectProbe.wait { zygoteFamily.isDisjoint(with: hostProcesses(matching: "libCodesandZygote.so")) },
                      "the killed daemon's zygote or its sandboxes survived")
    }
}

/// The parent of `pid`, from /proc (nil if it is gone).
func parentPID(_ pid: pid_t) -> pid_t? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("PPid:") }) else { return nil }
    return pid_t(line.dropFirst(5).trimmingCharacters(in: .whitespaces))
}

enum CgroupDetectProbe {
    static func wait(timeout: Double = 10, _ check: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if check() { return true }
            usleep(20_000)
        }
        return false
    }
}
