import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A line past `rpc.max_message_bytes` (1 MiB here) gets -32600; the daemon reads and drops the
/// rest of that line before it closes, so a client written like the README's Python example
/// (`sendall`, then `readline`) finishes sending and reads the reply instead of dying of EPIPE.
final class OverlongLineTests: XCTestCase {
    func test_a_client_that_sendalls_2_mib_then_reads_gets_the_32600_reply() throws {
        let daemon = try TestDaemon()
        for round in 1...3 {
            let c = try RawClient(path: daemon.socket, timeoutSeconds: 30)
            let line = #"{"jsonrpc":"2.0","id":1,"method":"run","params":{"language":"python3","code":"# + "\"#"
                + String(repeating: "x", count: 2 << 20) + "\"}}\n"
            XCTAssertNil(c.sendAll(Array(line.utf8)), "round \(round): sendall failed: the daemon closed while the client sent")
            let reply = c.readJSON() as? [String: Any]
            XCTAssertEqual(errorCode(reply), -32600, "round \(round)")
            XCTAssertTrue(reply?["id"] is NSNull)
            XCTAssertTrue(c.isClosedByServer(), "the connection closes after the reply")
        }
        let again = try RawClient(path: daemon.socket)
        XCTAssertEqual(result(again.call(runRequest(id: 2, "print(2)")))?["stdout"] as? String, "2\n", "it serves on")
    }

    func test_requests_before_the_over_long_line_are_answered_before_the_close() throws {
        let daemon = try TestDaemon()
        let c = try RawClient(path: daemon.socket, timeoutSeconds: 30)
        c.send(runRequest(id: 1, "import time; time.sleep(0.5); print('slow')") + "\n")
        XCTAssertNil(c.sendAll(Array((String(repeating: " ", count: (1 << 20) + 10) + "\n").utf8)))
        var replies: [Int?: [String: Any]] = [:]
        while let r = c.readJSON() as? [String: Any] { replies[r["id"] as? Int] = r }
        XCTAssertEqual(errorCode(replies[nil]), -32600, "\(replies)")
        XCTAssertEqual(result(replies[1])?["stdout"] as? String, "slow\n", "\(replies)")
    }

    func test_an_over_long_line_that_never_ends_is_dropped_for_at_most_16_mib_or_5_seconds() throws {
        let daemon = try TestDaemon()
        // Bytes: the daemon drops up to 16 MiB of the rest, then closes while we still send.
        let endless = try RawClient(path: daemon.socket, timeoutSeconds: 30)
        let err = endless.sendAll([UInt8](repeating: 0x61, count: 40 << 20))
        XCTAssertTrue(err == EPIPE || err == ECONNRESET, "40 MiB without a newline were all read: \(String(describing: err))")
        // Time: a client that stops sending mid-line gets the reply, and the close within ~5 s.
        let stalled = try RawClient(path: daemon.socket, timeoutSeconds: 30)
        XCTAssertNil(stalled.sendAll([UInt8](repeating: 0x61, count: (1 << 20) + 100)))
        let start = Date()
        XCTAssertEqual(errorCode(stalled.readJSON() as? [String: Any]), -32600)
        XCTAssertTrue(stalled.isClosedByServer())
        XCTAssertLessThan(Date().timeIntervalSince(start), 15)
    }
}
