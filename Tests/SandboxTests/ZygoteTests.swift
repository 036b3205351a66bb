import CSandbox
import CodesandCore
import CodesandProtocol
import Foundation
import Glibc
import XCTest

@testable import CodesandLinux
import CodesandSpawn

/// python3's pre-started interpreters are forks of a zygote (zygote.c, Zygote.swift). A fork must
/// behave as a fresh interpreter: its own random state, nothing of earlier runs, and the daemon
/// must go on serving when the zygote is gone.
final class ZygoteTests: XCTestCase {
    /// Runs `code` until a run finds its interpreter waiting (the pool learns the demand first).
    static func warmRun(_ live: LiveService, _ code: String, language: String = "python3") async throws -> RunResult {
        for _ in 0..<40 {
            let hits = live.service.metrics.prestartCounts(language).hits
            let r = try await live.run(language, code)
            if live.service.metrics.prestartCounts(language).hits > hits { return r }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTFail("no run of \(language) found its interpreter waiting")
        throw CancellationError()
    }

    func test_python3_interpreters_are_forks_of_the_zygote() async throws {
        try requireRoot()
        let live = try await LiveService(pool: 2)
        defer { live.shutdown() }
        await live.waitUntilReady()
        // Only the zygote imports ctypes: a fork of it has it loaded before the snippet runs.
        let r = try await Self.warmRun(live, "import sys, os; print('_ctypes' in sys.modules, os.getpid(), open('/proc/self/comm').read().strip())")
        XCTAssertEqual(r.stdout, "True 2 python3\n", r.stderr)
        XCTAssertEqual(live.backend.zygotes.map(\.language), ["python3"])
        XCTAssertEqual(live.service.status().zygotes, ["python3"], "status reports it")
    }

    /// A plain sandbox's init (sh here: nothing pre-started) is cloned by the plain spawner
    /// (codesand-spawner, a small C process), not by the daemon or python3's zygote: its
    /// /proc/PID/exe is the spawner. The program still starts from an exec, with nothing
    /// of the spawner's: default signals, its own argv. With the spawner killed, plain runs go on
    /// (cloned another way).
    func test_a_plain_sandbox_is_cloned_by_the_plain_spawner() async throws {
        try requireRoot()
        let live = try await LiveService(pool: 2)
        defer { live.shutdown() }
        await live.waitUntilReady()
        for _ in 0..<2 { _ = try await live.run("sh", "true") }
        await live.waitUntilReady()
        let spawner = try XCTUnwrap(live.backend.plainSpawnerPID, "the plain spawner runs")
        let marker = "4\(UInt32.random(in: 100_000...999_999))"
        async let slow = live.run("sh", "sleep 2.\(marker); grep -E '^Sig(Ign|Blk)' /proc/self/status; cat /proc/self/cmdline | tr '\\0' ' '")
        let initExe = try await Self.initExecutable(ofRunWith: "sleep 2.\(marker)")
        let r = try await slow
        XCTAssertTrue(initExe?.hasSuffix("/codesand-spawner") == true, "the sh run's init was cloned from \(initExe ?? "?")")
        XCTAssertTrue(r.stdout.contains("SigIgn:\t0000000000000000") && r.stdout.contains("SigBlk:\t0000000000000000"), r.stdout)
        XCTAssertTrue(r.stdout.hasSuffix("/bin/cat /proc/self/cmdline ") || r.stdout.hasSuffix("cat /proc/self/cmdline "), r.stdout)

        // The spawner killed: plain runs are answered all the same, and it is not started again at
        // once (one that died at each request would cost each a failed prepare).
        kill(spawner, SIGKILL)
        for i in 0..<4 {
            let again = try await live.run("sh", "echo \(i)")
            XCTAssertEqual(again.stdout, "\(i)\n", again.stderr)
        }
        await live.waitUntilReady()
        XCTAssertNil(live.backend.plainSpawnerPID, "restarted at once")
    }

    /// The executable of the init of the run whose `sleep` has `argument` (the program runs
    /// `sleep` as its child; the program's parent is the init), once it shows up.
    static func initExecutable(ofRunWith argument: String) async throws -> String? {
        func parent(_ pid: String) -> String? {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
            return status.split(separator: "\n").first(where: { $0.hasPrefix("PPid:") })?.split(separator: "\t").last.map(String.init)
        }
        for _ in 0..<150 {
            try await Task.sleep(for: .milliseconds(20))
            guard let sleeper = sandboxUserProcesses(matching: argument).first, let program = parent("\(sleeper)"),
                  let initPID = parent(program) else { continue }
            return try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(initPID)/exe")
        }
        return nil
    }

    /// An interpreter with no zygote of its own (node: its threads make a fork unsafe) is exec'd by
    /// an init the plain spawner cloned (a clone of the daemon would copy its page tables, ~2 ms of
    /// CPU per sandbox): the init's /proc/PID/exe is the spawner, node runs from its own exec with
    /// the launcher's argv, and the run is answered as before. With the spawner gone, runs go on.
    func test_an_interpreter_without_a_zygote_is_execd_in_an_init_of_the_plain_spawner() async throws {
        try requireRoot()
        let live = try await LiveService(pool: 2)
        defer { live.shutdown() }
        await live.waitUntilReady()
        let warm = try await Self.warmRun(live, "console.log(process.argv.length, typeof require)", language: "javascript")
        XCTAssertEqual(warm.stdout, "2 function\n", warm.stderr)
        await live.waitUntilReady()
        let spawner = try XCTUnwrap(live.backend.plainSpawnerPID, "the plain spawner runs")
        let marker = "5\(UInt32.random(in: 100_000...999_999))"
        let code = """
            const cp = require("child_process");
            cp.execFileSync("/bin/sleep", ["2.\(marker)"]);
            console.log(require("fs").readFileSync("/proc/self/cmdline", "latin1").split("\\0")[0], process.execPath);
            """
        let hits = live.service.metrics.prestartCounts("javascript").hits
        async let slow = live.run("javascript", code)
        let initExe = try await Self.initExecutable(ofRunWith: "sleep 2.\(marker)")
        let r = try await slow
        XCTAssertGreaterThan(live.service.metrics.prestartCounts("javascript").hits, hits, "node was waiting")
        XCTAssertTrue(initExe?.hasSuffix("/codesand-spawner") == true, "the node run's init was cloned from \(initExe ?? "?")")
        XCTAssertEqual(r.stdout, "/usr/bin/node /usr/bin/node\n", r.stderr)

        kill(spawner, SIGKILL)
        for i in 0..<4 {
            let again = try await live.run("javascript", "console.log(\(i))")
            XCTAssertEqual(again.stdout, "\(i)\n", again.stderr)
        }
    }

    func test_each_fork_has_its_own_random_state() async throws {
        try requireRoot()
        let live = try await LiveService(pool: 2)
        defer { live.shutdown() }
        await live.waitUntilReady()
        var seen: [Set<String>] = [[], [], []]
        for _ in 0..<4 {
            let r = try await Self.warmRun(live, "import random, os, tempfile; print(random.getrandbits(64), os.urandom(8).hex(), tempfile.mktemp())")
            XCTAssertEqual(r.status, .ok, r.stderr)
            for (i, word) in r.stdout.split(separator: " ").enumerated() where i < 3 { seen[i].insert(String(word)) }
        }
        XCTAssertEqual(seen.map(\.count), [4, 4, 4], "random, os.urandom, tempfile: \(seen)")
    }

    func test_a_run_changes_nothing_in_the_zygote() async throws {
        try requireRoot()
        let live = try await LiveService(pool: 1)
        defer { live.shutdown() }
        await live.waitUntilReady()
        let first = try await Self.warmRun(live, """
            import json, os, sys, builtins
            json.MARK = 1; os.environ['MARK'] = '1'; sys.path.append('/x'); builtins.MARK = 1
            sys.modules['marker'] = json
            print('set')
            """)
        XCTAssertEqual(first.stdout, "set\n", first.stderr)
        let second = try await Self.warmRun(live, """
            import json, os, sys, builtins
            print(hasattr(json, 'MARK'), 'MARK' in os.environ, '/x' in sys.path, hasattr(builtins, 'MARK'), 'marker' in sys.modules)
            """)
        XCTAssertEqual(second.stdout, "False False False False False\n", second.stderr)
    }

    func test_a_killed_zygote_costs_no_run_and_is_replaced() async throws {
        try requireRoot()
        let live = try await LiveService(pool: 2)
        defer { live.shutdown() }
        await live.waitUntilReady()
        _ = try await Self.warmRun(live, "print(1)")
        let first = try XCTUnwrap(live.backend.zygotes.first?.pid)
        kill(first, SIGKILL)
        for i in 0..<10 {
            let r = try await live.run("python3", "print(\(i))")
            XCTAssertEqual(r.stdout, "\(i)\n", r.stderr)
        }
        // Replaced after its retry delay; meanwhile interpreters start the plain way.
        var replaced: pid_t?
        for _ in 0..<100 where replaced == nil {
            _ = try await live.run("python3", "print(1)")
            replaced = live.backend.zygotes.first { $0.pid != first }?.pid
            try await Task.sleep(for: .milliseconds(100))
        }
        XCTAssertNotNil(replaced, "no new zygote")
        let r = try await Self.warmRun(live, "import sys; print('_ctypes' in sys.modules)")
        XCTAssertEqual(r.stdout, "True\n")
        live.shutdown()
        if let replaced { XCTAssertEqual(kill(replaced, 0), -1, "the zygote outlived the backend") }
    }

    /// A zygote that takes the request but never answers (stopped): the slot's fds are discarded,
    /// not reused by a plain spawn; the slot recovers the plain way and no init is left behind.
    func test_a_zygote_that_does_not_answer_costs_one_prepare_and_nothing_else() async throws {
        try requireRoot()
        let zombiesBefore = Self.zombieChildren()
        let live = try await LiveService(pool: 1)
        defer { live.shutdown() }
        await live.waitUntilReady()
        _ = try await Self.warmRun(live, "print(1)")
        let zygote = try XCTUnwrap(live.backend.zygotes.first?.pid)
        kill(zygote, SIGSTOP)
        let failures = live.service.status().slotFailures
        // Meanwhile the slot's prepare waits on the silent zygote (10 s): status must not wait with it.
        let first = Task { try await live.run("python3", "print(0)") }
        try await Task.sleep(for: .milliseconds(500))
        let (status, seconds) = await elapsed { live.service.status() }
        XCTAssertLessThan(seconds, 1, "status waited for a spawn the zygote does not answer")
        XCTAssertEqual(status.zygotes, ["python3"], "the zygote counts as running until it is stopped")
        let firstResult = try await first.value
        XCTAssertEqual(firstResult.stdout, "0\n")
        for i in 1..<3 {  // the first waited for the zygote's 10 s; these for the retried slot
            let r = try await live.run("python3", "print(\(i))")
            XCTAssertEqual(r.stdout, "\(i)\n", r.stderr)
        }
        XCTAssertEqual(live.service.status().slotFailures, failures + 1, "one prepare failed, the next went the plain way")
        XCTAssertEqual(kill(zygote, 0), -1, "the silent zygote was stopped and reaped")
        let leftovers = await live.leftoverPids()
        XCTAssertEqual(leftovers, [])
        XCTAssertEqual(Self.zombieChildren().subtracting(zombiesBefore), [], "an init or zygote of ours was never reaped")
    }

    /// A zygote that dies while starting (here: a library without the zygote's functions) costs
    /// no prepare and no run: sandboxes start their interpreter the plain way.
    func test_a_zygote_that_dies_starting_costs_nothing_but_speed() async throws {
        try requireRoot()
        let zombiesBefore = Self.zombieChildren()
        let live = try await LiveService(pool: 2) { $0.sandbox.zygoteLibrary = "/usr/lib/x86_64-linux-gnu/libc.so.6" }
        defer { live.shutdown() }
        // Its death is seen at once (an EOF), not after the 10 s a silent zygote gets.
        let (_, seconds) = await elapsed { await live.waitUntilReady() }
        XCTAssertLessThan(seconds, 5)
        for i in 0..<4 {
            let r = try await live.run("python3", "import sys; print(\(i), '_ctypes' in sys.modules)")
            XCTAssertEqual(r.stdout, "\(i) False\n", r.stderr)
        }
        XCTAssertEqual(live.service.status().slotFailures, 0)
        XCTAssertEqual(live.service.status().zygotes, [])
        await live.waitUntilReady()  // a used sandbox's init is reaped by the slot's reset
        XCTAssertEqual(Self.zombieChildren().subtracting(zombiesBefore), [])
    }

    /// The init a silent zygote may have cloned is found by the pipe it holds, killed and reaped;
    /// a child of ours with the daemon's own command line, or without the pipe, is left alone.
    func test_a_stray_init_is_found_by_its_pipe() throws {
        var p: [Int32] = [0, 0]
        XCTAssertEqual(cs_pipe_cloexec(&p), 0)  // only the child it is given to holds it
        defer { close(p[0]); close(p[1]) }
        func spawn(_ argv: [String], holding fd: Int32?) throws -> pid_t {
            var spawn = Spawn(argv)
            spawn.passing = fd.map { [$0] } ?? []
            return try spawn.start()
        }
        let stray = try spawn(["/bin/sleep", "30"], holding: p[0])
        let bystander = try spawn(["/bin/sleep", "31"], holding: nil)
        defer { kill(bystander, SIGKILL); waitpid(bystander, nil, 0) }
        XCTAssertTrue(CgroupDetectProbe.wait { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(stray)/fd"))?.contains("3") == true })
        SandboxInstance.killStrays(holding: p[1])  // the other end of the same pipe: the same inode
        XCTAssertEqual(kill(stray, 0), -1, "killed and reaped")
        XCTAssertEqual(kill(bystander, 0), 0, "left alone")
    }

    /// Our unreaped children that are sandbox inits or interpreters (other tests of this process
    /// may leave zombies of their own: compare with a set taken before).
    /// A reload that changes a language's launcher or environment gets a new zygote; the old
    /// one, which nobody asks for any more, is stopped.
    func test_a_changed_launcher_or_environment_replaces_the_zygote() throws {
        try requireRoot()
        let config = try testConfig(pool: 1, name: "-zspec")
        let python = try XCTUnwrap(config.languages.first { $0.name == "python3" })
        let set = ZygoteSet(config: config.sandbox, systemRoot: "", logger: testLogger)
        defer { set.stopAll() }
        let launchers = Launchers(config: config.sandbox, logger: testLogger)
        func spec(_ env: [String]) throws -> PrestartSpec {
            try XCTUnwrap(launchers.resolve(PrestartSpec(language: "python3", argv: python.prestart, env: env, zygote: true,
                                                         launcher: python.launcher)))
        }
        let env = ["PATH=/usr/bin:/bin", "HOME=\(config.sandbox.home)"]
        let first = try XCTUnwrap(set.zygote(for: spec(env)))
        XCTAssertTrue(set.zygote(for: try spec(env)) === first)
        let second = try XCTUnwrap(set.zygote(for: spec(env + ["GENERATION=2"])))
        XCTAssertFalse(second === first)
        XCTAssertEqual(set.running.map(\.pid), [second.pid])
        XCTAssertEqual(kill(first.pid, 0), -1, "the old zygote was stopped and reaped")
    }

    static func zombieChildren() -> Set<pid_t> {
        let me = getpid()
        return Set(((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name -> pid_t? in
            guard let pid = pid_t(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
            let comm = stat[stat.index(after: open)..<close]
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            guard ["codesand-init", "python3", "ruby", "php"].contains(comm) else { return nil }
            return fields.count > 1 && fields[0] == "Z" && pid_t(fields[1]) == me ? pid : nil
        })
    }

    func test_a_zygote_starts_only_from_what_root_alone_can_change() throws {
        try requireRoot()
        let dir = "/run/codesand-zygote-trust-\(getpid())"  // /run: root's, 0755
        try FileManager.default.createDirectory(atPath: dir + "/lib", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lib = dir + "/lib/libCodesandZygote.so"
        XCTAssertTrue(FileManager.default.createFile(atPath: lib, contents: Data([0])))
        chmod(lib, 0o644)
        XCTAssertNoThrow(try ZygoteSet.checkTrusted(library: lib, home: dir + "/home/sandbox"))
        chmod(lib, 0o664)
        XCTAssertThrowsError(try ZygoteSet.checkTrusted(library: lib, home: dir + "/home/sandbox"), "group-writable")
        chmod(lib, 0o644)
        chown(lib, 1, 1)
        XCTAssertThrowsError(try ZygoteSet.checkTrusted(library: lib, home: dir + "/home/sandbox"), "not root's")
        chown(lib, 0, 0)
        chmod(dir + "/lib", 0o777)
        XCTAssertThrowsError(try ZygoteSet.checkTrusted(library: lib, home: dir + "/home/sandbox"), "a directory above is anyone's")
        chmod(dir + "/lib", 0o755)
        XCTAssertEqual(symlink(dir + "/lib", dir + "/link"), 0)
        XCTAssertThrowsError(try ZygoteSet.checkTrusted(library: dir + "/link/libCodesandZygote.so", home: dir + "/home/sandbox"), "a symlink")
        // The home: its user site-packages would run as root, so it must not exist or be creatable.
        XCTAssertThrowsError(try ZygoteSet.checkTrusted(library: lib, home: dir + "/lib"), "exists")
        XCTAssertThrowsError(try ZygoteSet.checkTrusted(library: lib, home: "/tmp/codesand-nobody-\(getpid())/home"), "under sticky /tmp")
        // Root's own directory in sticky /tmp (a checkout there): others can neither change nor replace it.
        let sticky = "/tmp/codesand-zygote-trust-\(getpid())"
        try FileManager.default.createDirectory(atPath: sticky, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: sticky) }
        chmod(sticky, 0o755)
        XCTAssertTrue(FileManager.default.createFile(atPath: sticky + "/lib.so", contents: Data([0])))
        chmod(sticky + "/lib.so", 0o644)
        XCTAssertTrue(ZygoteSet.onlyRootCanChange(sticky + "/lib.so"))
        chmod(sticky, 0o1777)
        XCTAssertTrue(ZygoteSet.onlyRootCanChange(sticky + "/lib.so"), "sticky: root's file stays root's")
        XCTAssertFalse(ZygoteSet.loadableAsRoot(sticky + "/lib.so"), "others can add libraries next to it, which the loader finds first")
        chmod(sticky, 0o755)
        XCTAssertTrue(ZygoteSet.loadableAsRoot(sticky + "/lib.so"))
        chmod(sticky, 0o1777)
        chmod(sticky, 0o777)
        XCTAssertFalse(ZygoteSet.onlyRootCanChange(sticky + "/lib.so"), "anyone may replace it")
        XCTAssertFalse(ZygoteSet.onlyRootCanChange("/tmp/codesand-absent-\(getpid())"), "anyone could create it")
        var config = try testConfig(pool: 1, name: "-ztrust").sandbox
        config.zygoteLibrary = lib
        XCTAssertEqual(ZygoteSet(config: config, systemRoot: "", logger: testLogger).library, lib)
        XCTAssertNil(ZygoteSet(config: config, systemRoot: "/var/lib/codesand/image", logger: testLogger).library, "an image's interpreter")
    }

    /// The zygote answers a malformed request with an error, closes the fds that came with it,
    /// serves on, and exits when the daemon's end closes.
    func test_a_bad_request_gets_an_error_and_the_zygote_serves_on() throws {
        try requireRoot()
        let config = try testConfig(pool: 1, name: "-zbad")
        let python = try XCTUnwrap(config.languages.first { $0.name == "python3" })
        let library = try XCTUnwrap(ZygoteSet.findLibrary(config: config.sandbox, logger: testLogger))
        var pair: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair), 0)
        let launcher = try XCTUnwrap(Launchers(config: config.sandbox, logger: testLogger)
            .resolve(PrestartSpec(language: "python3", argv: python.prestart, env: [], launcher: python.launcher)))
        let pid = try Zygote.launch(argv: launcher.argv + [library, "3"], env: ["PATH=/usr/bin:/bin"], socket: pair[1], stderr: 2)
        close(pair[1])
        defer { close(pair[0]) }
        let fdCount = { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1 }
        func ask(_ bytes: [UInt8], withPipe: Bool) -> (pid: Int32, err: Int32)? {
            var p: [Int32] = [0, 0]
            pipe(&p)
            defer { close(p[0]); close(p[1]) }
            var bytes = bytes
            var control = [UInt8](repeating: 0, count: 64)
            let sent = bytes.withUnsafeMutableBytes { b in
                control.withUnsafeMutableBytes { c -> Int in
                    var iov = iovec(iov_base: b.baseAddress, iov_len: b.count)
                    return withUnsafeMutablePointer(to: &iov) { iovp -> Int in
                    var mh = msghdr()
                    mh.msg_iov = iovp
                    mh.msg_iovlen = 1
                    if withPipe {
                        let cm = c.baseAddress!.assumingMemoryBound(to: cmsghdr.self)
                        cm.pointee.cmsg_level = SOL_SOCKET
                        cm.pointee.cmsg_type = Int32(SCM_RIGHTS)
                        cm.pointee.cmsg_len = MemoryLayout<cmsghdr>.size + 8
                        (c.baseAddress! + MemoryLayout<cmsghdr>.size).storeBytes(of: p[0], as: Int32.self)
                        (c.baseAddress! + MemoryLayout<cmsghdr>.size + 4).storeBytes(of: p[1], as: Int32.self)
                        mh.msg_control = c.baseAddress
                        mh.msg_controllen = MemoryLayout<cmsghdr>.size + 8
                    }
                    return sendmsg(pair[0], &mh, Int32(MSG_NOSIGNAL))
                    }
                }
            }
            guard sent == bytes.count else { return nil }
            var reply: (Int32, Int32) = (0, 0)
            let n = withUnsafeMutableBytes(of: &reply) { recv(pair[0], $0.baseAddress, $0.count, 0) }
            return n == 8 ? reply : nil
        }
        // It announces itself once it serves.
        var ready: UInt8 = 0
        XCTAssertEqual(recv(pair[0], &ready, 1, 0), 1)
        XCTAssertEqual(ready, UInt8(ascii: "Z"))
        let garbage = ask(Array("not a request".utf8), withPipe: false)
        XCTAssertEqual(garbage?.pid, -1)
        XCTAssertEqual(garbage?.err, EMSGSIZE)  // shorter than a request header
        let before = fdCount()
        // A header with the right magic but counts that do not match what follows, with fds.
        var header = [UInt8](repeating: 0, count: 96)  // sizeof(struct zy_request)
        header.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(0x335a5943), as: UInt32.self) }
        let bad = ask(header + Array("x".utf8), withPipe: true)
        XCTAssertEqual(bad?.pid, -1)
        XCTAssertEqual(bad?.err, EINVAL)
        XCTAssertEqual(fdCount(), before, "the request's fds were closed")
        XCTAssertEqual(ask([1, 2, 3], withPipe: true)?.err, EMSGSIZE, "still serving")
        close(pair[0])
        pair[0] = -1
        var status: Int32 = -1
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        XCTAssertEqual(status, 0, "exits quietly when the daemon is gone")
    }
}
