import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Connections up to and past `rpc.max_connections` and `rpc.max_connections_per_uid`: one too
/// many gets a -32004 line and is closed, the ones accepted are served on, and the daemon keeps
/// file descriptors for its sandboxes and never spins when accept() has none left.
final class ConnectionLimitTests: XCTestCase {
    /// A connection that asked for `status`: its reply, or the refusal the daemon sent instead.
    func statusOrRefusal(_ path: String, timeout: Int = 20) throws -> (RawClient, [String: Any]?) {
        let c = try RawClient(path: path, timeoutSeconds: timeout)
        _ = c.sendAll(Array(#"{"jsonrpc":"2.0","id":1,"method":"status"}"#.utf8) + [0x0a])  // EPIPE when refused: the line is there
        return (c, c.readJSON() as? [String: Any])
    }

    func message(_ reply: [String: Any]?) -> String { (reply?["error"] as? [String: Any])?["message"] as? String ?? "" }

    func test_connections_past_max_connections_get_32004_and_the_accepted_ones_are_served_on() throws {
        let daemon = try TestDaemon(extraConfig: "[rpc]\nmax_connections = 8\nmax_connections_per_uid = 8")
        var open: [RawClient] = []
        for i in 1...8 {
            let (c, r) = try statusOrRefusal(daemon.socket)
            XCTAssertNotNil(result(r)?["pool_size"], "connection \(i): \(String(describing: r))")
            open.append(c)
        }
        for _ in 1...4 {
            let (c, r) = try statusOrRefusal(daemon.socket)
            XCTAssertEqual(errorCode(r), -32004, "\(String(describing: r))")
            XCTAssertTrue(r?["id"] is NSNull)
            XCTAssertTrue(message(r).contains("at most 8"), message(r))
            let data = (r?["error"] as? [String: Any])?["data"] as? [String: Any]
            XCTAssertEqual(data?["limit"] as? String, "total")
            XCTAssertEqual(data?["max"] as? Int, 8)
            XCTAssertTrue(c.isClosedByServer())
        }
        // The accepted ones are served: a run on one of them, status on each.
        XCTAssertEqual(result(open[0].call(runRequest(id: 2, "print(2)")))?["stdout"] as? String, "2\n")
        for c in open { XCTAssertNotNil(result(c.call(#"{"jsonrpc":"2.0","id":3,"method":"status"}"#))) }
        // Two close: two others may come (the daemon counts a close once it has seen it).
        open.removeLast(2)
        var admitted = 0
        for _ in 0..<100 where admitted < 2 {
            let (c, r) = try statusOrRefusal(daemon.socket)
            if result(r) != nil { admitted += 1; open.append(c) } else { usleep(50_000) }
        }
        XCTAssertEqual(admitted, 2, "closed connections free their places")
        let (_, over) = try statusOrRefusal(daemon.socket)
        XCTAssertEqual(errorCode(over), -32004)
    }

    func test_max_connections_per_uid_counts_each_uid_apart() throws {
        let daemon = try TestDaemon(extraConfig: "[rpc]\nmax_connections = 100\nmax_connections_per_uid = 3")
        var mine: [RawClient] = []
        for _ in 1...3 {
            let (c, r) = try statusOrRefusal(daemon.socket)
            XCTAssertNotNil(result(r), "\(String(describing: r))")
            mine.append(c)
        }
        let (_, fourth) = try statusOrRefusal(daemon.socket)
        XCTAssertEqual(errorCode(fourth), -32004)
        XCTAssertTrue(message(fourth).contains("from uid 0: at most 3"), message(fourth))

        // Another user (nobody, in the socket's group) has three of its own; its fourth is refused.
        let gid = try XCTUnwrap(getgrnam("codesand")?.pointee.gr_gid)
        let script = """
        import json, socket, sys, time
        for i in range(4):
            s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(20)
            try: s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"status"}\\n')
            except OSError: pass
            r = json.loads(s.makefile('rb').readline() or 'null')
            print('accepted' if r and 'result' in r else 'refused %s %s' % (r['error']['code'], r['error']['message']), flush=True)
            globals()['keep%d' % i] = s
        print('holding', flush=True)
        time.sleep(120)
        """
        let nobody = try TestProcess(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--groups=\(gid)", "/usr/bin/python3", "-c",
                                      script, daemon.socket], log: "\(daemon.dir)/nobody.log")
        XCTAssertTrue(CgroupDetectProbe.wait(timeout: 30) { nobody.log.contains("holding") }, nobody.log)
        let lines = nobody.log.split(separator: "\n").map(String.init)
        XCTAssertEqual(Array(lines.prefix(3)), ["accepted", "accepted", "accepted"], nobody.log)
        XCTAssertTrue(lines[3].hasPrefix("refused -32004 too many connections from uid 65534"), nobody.log)
        let (_, again) = try statusOrRefusal(daemon.socket)
        XCTAssertTrue(message(again).contains("from uid 0"), "root is still at its cap: \(message(again))")
        XCTAssertNotNil(result(mine[0].call(#"{"jsonrpc":"2.0","id":5,"method":"status"}"#)))
    }

    func test_a_reload_keeps_the_connection_limits_and_says_they_need_a_restart() throws {
        let daemon = try TestDaemon(extraConfig: "[rpc]\nmax_connections = 2")
        let path = "\(daemon.dir)/config.toml"
        try (try String(contentsOfFile: path, encoding: .utf8)).replacingOccurrences(of: "max_connections = 2", with: "max_connections = 3")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let (c, _) = try statusOrRefusal(daemon.socket)
        let r = c.call(#"{"jsonrpc":"2.0","id":2,"method":"pool.reload"}"#)
        XCTAssertEqual(result(r)?["needs_restart"] as? [String], ["rpc"], "\(String(describing: r))")
        let (kept, second) = try statusOrRefusal(daemon.socket)
        XCTAssertNotNil(result(second))
        let (_, third) = try statusOrRefusal(daemon.socket)
        XCTAssertEqual(errorCode(third), -32004, "the limit of 2 still holds")
        withExtendedLifetime((c, kept)) {}  // both connections stay open to here
    }

    /// Under an open-file limit of 300, 400 clients: the daemon lowers max_connections to what the
    /// limit leaves beside its sandboxes, refuses the rest, and its runs still get their fds.
    func test_under_a_low_open_file_limit_connections_are_refused_before_fds_run_out() throws {
        let daemon = try TestDaemon(extraConfig: "[rpc]\nmax_connections = 100000\nmax_connections_per_uid = 100000",
                                    argvPrefix: ["/usr/bin/prlimit", "--nofile=300:300", "--"])
        var accepted: [RawClient] = [], refused = 0
        for i in 1...400 {
            guard let (c, r) = try? statusOrRefusal(daemon.socket, timeout: 5) else {
                return XCTFail("connection \(i) was neither accepted nor refused: the daemon ran out of fds (\(daemon.openFDs) open)")
            }
            if result(r) != nil { accepted.append(c) } else if errorCode(r) == -32004 { refused += 1 } else {
                return XCTFail("connection \(i): \(String(describing: r))")
            }
        }
        XCTAssertGreaterThan(accepted.count, 20)
        XCTAssertEqual(accepted.count + refused, 400)
        XCTAssertLessThan(daemon.openFDs, 300)
        XCTAssertTrue(daemon.log.contains("rpc.max_connections lowered"), daemon.log)
        // Every accepted connection can run code: the sandboxes' fds were kept for them.
        for (i, c) in accepted.enumerated() where i % 10 == 0 {
            let r = c.call(runRequest(id: i, "print(\(i))"))
            XCTAssertEqual(result(r)?["stdout"] as? String, "\(i)\n", "\(String(describing: r))")
        }
    }

    /// With no fd left for accept() (the limit lowered under the daemon), the daemon pauses
    /// accepting instead of spinning, serves the connections it has, and accepts the waiting ones
    /// once fds are back.
    func test_accept_failing_with_emfile_backs_off_and_recovers() throws {
        let daemon = try TestDaemon()
        let served = try (1...3).map { _ in try statusOrRefusal(daemon.socket).0 }
        // Every slot ready first: a prepare still under way would close fds after the limit is
        // lowered, and one accept then succeeding would hide a spin (NIO's accept back-off only
        // worked after an accept that succeeded: AcceptPause.swift).
        let ready = (0..<200).contains { _ in
            let slots = result(served[0].call(#"{"jsonrpc":"2.0","id":2,"method":"status"}"#))?["slots"] as? [String: Int]
            if slots?["ready"] == 2 { return true }
            usleep(50_000)
            return false
        }
        XCTAssertTrue(ready, "the pool did not get ready")
        // The soft limit at the lowest free fd number: no fd can be had. Only the soft one: raising a
        // hard limit again needs CAP_SYS_RESOURCE, which a test runner may lack.
        let open = daemon.lowestFreeFD, hard = daemon.hardFileLimit
        let lower = try TestProcess(["/usr/bin/prlimit", "--pid", "\(daemon.pid)", "--nofile=\(open):\(hard)"], log: "\(daemon.dir)/prlimit.log")
        XCTAssertEqual(lower.wait(timeout: 10), 0, "\(open) fds: \(lower.log)")
        // These wait in the listen backlog: accept() fails with EMFILE.
        let waiting = try (1...5).map { _ in try RawClient(path: daemon.socket, timeoutSeconds: 20) }
        for c in waiting { c.send(#"{"jsonrpc":"2.0","id":7,"method":"status"}"# + "\n") }
        usleep(500_000)
        let cpuBefore = daemon.cpuSeconds
        sleep(3)
        let cpu = daemon.cpuSeconds - cpuBefore
        XCTAssertLessThan(cpu, 0.6, "the daemon used \(cpu) s of CPU in 3 s while accept() failed")
        for c in served { XCTAssertNotNil(result(c.call(#"{"jsonrpc":"2.0","id":8,"method":"status"}"#)), "accepted connections are served") }
        let raise = try TestProcess(["/usr/bin/prlimit", "--pid", "\(daemon.pid)", "--nofile=\(hard):\(hard)"], log: "\(daemon.dir)/prlimit2.log")
        XCTAssertEqual(raise.wait(timeout: 10), 0, raise.log)
        for c in waiting { XCTAssertEqual((c.readJSON() as? [String: Any])?["id"] as? Int, 7, "a waiting client is served once fds are back") }
        XCTAssertEqual(result(served[0].call(runRequest(id: 9, "print(9)")))?["stdout"] as? String, "9\n")
    }
}
