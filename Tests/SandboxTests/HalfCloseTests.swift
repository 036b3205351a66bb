import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A client that sends its requests and then shuts down its sending side (`printf … | socat`, the
/// usage protocol.md shows) gets every reply before the daemon closes: a reply is written and
/// flushed before the connection counts its request done.
final class HalfCloseTests: XCTestCase {
    static let count = 200
    /// Room for every run to wait for a sandbox: this test is about replies, not about -32002.
    static let config = "[queue]\nmax = 1000\nmax_wait_ms = 60000"

    /// 200 requests: `status` only (replies finish on many threads at once, some while the input
    /// ends), or every other one a run (the last replies come long after the input ended).
    func pipelinedRequests(runs: Bool) -> String {
        (1...Self.count).map { id in
            runs && id % 2 == 0 ? runRequest(id: id, "print(\(id))") : #"{"jsonrpc":"2.0","id":\#(id),"method":"status"}"#
        }.joined(separator: "\n") + "\n"
    }

    /// Every id once, each with its right answer.
    func checkReplies(_ lines: [String], runs: Bool, file: StaticString = #filePath, line: UInt = #line) {
        var seen: [Int: [String: Any]] = [:]
        for text in lines where !text.isEmpty {
            guard let reply = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                  let id = reply["id"] as? Int else { return XCTFail("not a reply: \(text.prefix(300))", file: file, line: line) }
            XCTAssertNil(seen[id], "two replies for \(id)", file: file, line: line)
            seen[id] = reply
        }
        let missing = Set(1...Self.count).subtracting(seen.keys)
        XCTAssertEqual(missing, [], "\(missing.count) of \(Self.count) replies lost", file: file, line: line)
        for (id, reply) in seen {
            if runs && id % 2 == 0 {
                XCTAssertEqual(result(reply)?["stdout"] as? String, "\(id)\n", "\(reply)", file: file, line: line)
            } else {
                XCTAssertNotNil(result(reply)?["pool_size"], "\(reply)", file: file, line: line)
            }
        }
    }

    func test_200_pipelined_requests_then_shutdown_wr_on_a_raw_socket_all_get_replies() throws {
        let daemon = try TestDaemon(extraConfig: Self.config)
        for round in 1...6 {
            let c = try RawClient(path: daemon.socket, timeoutSeconds: 60)
            c.send(pipelinedRequests(runs: round % 2 == 0))
            c.shutdownWrite()
            var lines: [String] = []
            while let line = c.readLine() { lines.append(line) }  // to the daemon's close
            checkReplies(lines, runs: round % 2 == 0)
            XCTAssertEqual(lines.count, Self.count, "round \(round)")
        }
    }

    func test_200_pipelined_requests_through_socat_all_get_replies() throws {
        let daemon = try TestDaemon(extraConfig: Self.config)
        let input = "\(daemon.dir)/requests.jsonl", output = "\(daemon.dir)/replies.jsonl"
        for round in 1...6 {
            try pipelinedRequests(runs: round % 2 == 0).write(toFile: input, atomically: true, encoding: .utf8)
            // -t 60: socat waits up to a minute for the daemon's close after its input ended, so a
            // lost reply is the daemon's doing, not socat's own 0.5 s timeout.
            let started = Date()
            let socat = try TestProcess(["/bin/sh", "-c", "exec /usr/bin/socat -t 60 - UNIX-CONNECT:\"$0\" < \"$1\" > \"$2\"",
                                         daemon.socket, input, output], log: "\(daemon.dir)/socat.log")
            XCTAssertEqual(socat.wait(timeout: 90), 0, socat.log)
            XCTAssertLessThan(Date().timeIntervalSince(started), 60, "the daemon closes after the last reply")
            let text = try String(contentsOfFile: output, encoding: .utf8)
            checkReplies(text.split(separator: "\n").map(String.init), runs: round % 2 == 0)
            XCTAssertEqual(text.split(separator: "\n").count, Self.count, "round \(round)")
        }
    }
}
