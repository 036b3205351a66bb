import CodesandCore
import CodesandProtocol
import Foundation
import XCTest

/// A slot keeps its network namespace for its next sandbox while its runs make no socket but unix
/// ones (the init's socket watch), and no socket lives in it when the next sandbox joins it. What
/// must hold: the next run sees a namespace exactly as a new one (every table and counter of
/// /proc/net), whatever the last run did. One slot, so every run is the same slot's.
final class NetworkNamespaceReuseTests: LiveServiceTestCase {
    override var poolSize: Int { 1 }

    /// Python that prints the namespace's cookie (SO_NETNS_COOKIE, through a unix socket, which
    /// leaves the namespace untouched): unlike its inode number, never used again by another one.
    static let printCookie = "import socket as _s; print('netns', int.from_bytes(_s.socket(_s.AF_UNIX).getsockopt(_s.SOL_SOCKET, 71, 8), 'little'))"
    static let printCookieInBash = "python3 -c \"\(printCookie)\""

    /// Everything /proc/net shows of the namespace (but sockstat's counters, which are the host's),
    /// and the namespace's identity.
    func fingerprint() async throws -> (netns: String, state: String) {
        let files = "snmp snmp6 netstat dev ipv6_route route if_inet6 unix tcp tcp6 udp udp6 raw raw6 icmp icmp6 igmp igmp6 dev_mcast fib_trie"
        let r = try await live.run("bash", """
            \(Self.printCookieInBash); cd /proc/net; head -1 sockstat
            for f in \(files); do echo "== $f"; cat $f 2>&1; done
            cat /proc/sys/net/ipv4/tcp_rmem
            """)
        XCTAssertEqual(r.status, .ok, "\(r)")
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertGreaterThan(lines.count, 50, r.stdout)
        return (String(lines.first ?? ""), lines.dropFirst().joined(separator: "\n"))
    }

    /// A run that surely leaves a new namespace to the next one (it makes a TCP socket).
    func touch() async throws {
        let r = try await live.run("python3", "import socket; socket.socket()")
        XCTAssertEqual(r.status, .ok, "\(r)")
    }

    func test_runs_with_only_unix_sockets_keep_the_namespace_and_leave_nothing_in_it() async throws {
        try await touch()
        let new = try await fingerprint()
        XCTAssertTrue(new.state.contains("4096\t16384\t6291456"), "the sandbox's receive buffers: \(new.state)")
        // Unix sockets: pairs, bound names, connections.
        let unix = """
            import socket, os
            a, b = socket.socketpair()
            a.send(b"x"); assert b.recv(1) == b"x"
            l = socket.socket(socket.AF_UNIX); l.bind(b"\\0codesand-reuse-test"); l.listen()
            c = socket.socket(socket.AF_UNIX); c.connect(b"\\0codesand-reuse-test")
            \(Self.printCookie)
            """
        let r = try await live.run("python3", unix)
        XCTAssertEqual(r.stdout, new.netns + "\n", "the unix-only run had the kept namespace: \(r)")
        let after = try await fingerprint()
        XCTAssertEqual(after.netns, new.netns, "kept for the next run")
        XCTAssertEqual(after.state, new.state, "nothing of the unix sockets is left")
        // A bound socket in flight inside another, in a cycle: it outlives the run until the kernel
        // collects it. The next run has the namespace once that happened, or a new one.
        let inFlight = """
            import socket, array
            l = socket.socket(socket.AF_UNIX); l.bind(b"\\0codesand-reuse-test"); l.listen()
            d1, d2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            d1.sendmsg([b"y"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [l.fileno(), d2.fileno()]))])
            """
        let sent = try await live.run("python3", inFlight)
        XCTAssertEqual(sent.status, .ok, "\(sent)")
        let collected = try await fingerprint()
        XCTAssertEqual(collected.state, new.state, "nothing of the socket in flight is left")
        // And it works as a new one: loopback TCP, then (the namespace touched) a new one again.
        let tcp = """
            import socket
            s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
            c = socket.create_connection(s.getsockname()); a, _ = s.accept(); c.send(b"hi"); print(a.recv(2).decode())
            """
        let t = try await live.run("python3", tcp)
        XCTAssertEqual(t.stdout, "hi\n", "\(t)")
        let next = try await fingerprint()
        XCTAssertNotEqual(next.netns, new.netns)
        XCTAssertEqual(next.state, new.state)
    }

    func test_every_kind_of_network_socket_gives_the_next_run_a_new_namespace() async throws {
        try await touch()
        let new = try await fingerprint()
        let cases: [(String, String, String)] = [
            ("tcp listen", "python3", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 8080)); s.listen()"),
            // What getaddrinfo("localhost") does: it left a per-CPU IPv6 route the next run could read.
            ("udp connect ::1", "python3", "import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.connect(('::1', 9)); s.send(b'x')"),
            ("udp ipv4 sendto", "python3", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9))"),
            ("netlink route", "python3", "import socket; socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)"),
            ("icmp", "python3", "import socket\ntry: socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)\nexcept OSError: pass"),
            ("a forked child's", "python3", "import os, socket\nif os.fork() == 0:\n    socket.socket(); os._exit(0)\nos.wait()"),
            ("a thread's", "python3", "import socket, threading\nt = threading.Thread(target=socket.socket); t.start(); t.join()"),
            ("bash /dev/tcp", "bash", "exec 3<>/dev/tcp/127.0.0.1/9 || true"),
        ]
        for (name, language, code) in cases {
            let printNetns = language == "bash" ? Self.printCookieInBash : Self.printCookie
            let r = try await live.run(language, code + "\n" + printNetns)
            XCTAssertEqual(r.status, .ok, "\(name): \(r)")
            let used = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertTrue(used.hasPrefix("netns "), "\(name): \(r)")
            let next = try await fingerprint()
            XCTAssertNotEqual(next.netns, used, "\(name): the namespace it touched went to the next run")
            XCTAssertEqual(next.state, new.state, "\(name): the next run's namespace is not as new")
        }
    }

    func test_a_run_that_ends_without_its_status_gives_the_next_run_a_new_namespace() async throws {
        try await touch()
        let before = try await fingerprint()
        // Killed at the wall limit: the init never says what it let through.
        let r = try await live.run("bash", "\(Self.printCookieInBash); sleep 5", limits: RunLimits(wallMs: 1000))
        XCTAssertEqual(r.status, .timeout)
        XCTAssertEqual(r.stdout, before.netns + "\n")
        let next = try await fingerprint()
        XCTAssertNotEqual(next.netns, before.netns)
    }

    func test_a_socket_alive_in_the_kept_namespace_makes_the_next_sandbox_a_new_one() async throws {
        try await touch()
        let kept = try await fingerprint().netns
        await live.waitUntilReady()
        // Something outside holds a unix socket in the namespace the ready sandbox joined (as a
        // socket in flight that outlived its run would, until its garbage collection).
        let initPID = try XCTUnwrap(readyInit(), "the slot's ready sandbox")
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        holder.arguments = ["--net=/proc/\(initPID)/ns/net", "/usr/bin/python3", "-c",
                            "import socket, time; s = socket.socket(socket.AF_UNIX); s.bind(b'\\0codesand-held'); print('held', flush=True); time.sleep(60)"]
        let out = Pipe()
        holder.standardOutput = out
        try holder.run()
        defer { kill(holder.processIdentifier, SIGKILL); holder.waitUntilExit() }
        var said = ""
        while !said.hasSuffix("\n") {  // the socket is bound once it says so
            let more = out.fileHandleForReading.availableData
            if more.isEmpty { break }
            said += String(decoding: more, as: UTF8.self)
        }
        XCTAssertEqual(said, "held\n")
        let seen = try await live.run("bash", "\(Self.printCookieInBash); grep -c codesand-held /proc/net/unix")
        XCTAssertEqual(seen.stdout, "\(kept)\n1\n", "the run had the kept namespace, with the held socket")
        let next = try await live.run("bash", "\(Self.printCookieInBash); grep -c codesand-held /proc/net/unix")
        XCTAssertNotEqual(next.stdout.split(separator: "\n").first.map(String.init), kept, "a namespace with a socket in it is not joined")
        XCTAssertTrue(next.stdout.hasSuffix("\n0\n"), "\(next)")
    }

    /// The init of the slot's ready sandbox: the one codesand-init in this service's cgroups.
    func readyInit() -> pid_t? {
        let name = live.config.sandbox.cgroupName
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { pid_t($0) } ?? []
        return pids.first { pid in
            let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? ""
            let cgroup = (try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)) ?? ""
            return comm == "codesand-init\n" && cgroup.contains("/\(name)/slot-0")
        }
    }
}

/// `sandbox.keep_network_namespace = false`: every sandbox gets a new network namespace.
final class NetworkNamespaceNotKeptTests: LiveServiceTestCase {
    override var poolSize: Int { 1 }
    override func configure(_ c: inout CodesandConfig) { c.sandbox.keepNetworkNamespace = false }

    func test_each_run_has_a_new_namespace() async throws {
        var seen: Set<String> = []
        for _ in 0..<3 {
            let r = try await live.run("bash", NetworkNamespaceReuseTests.printCookieInBash)
            XCTAssertTrue(r.stdout.hasPrefix("netns "), "\(r)")
            seen.insert(r.stdout)
        }
        XCTAssertEqual(seen.count, 3, "\(seen)")
    }
}
