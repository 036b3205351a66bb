import CodesandClient
import CodesandCore
import CodesandProtocol
import CodesandServer
import Foundation
import NIOCore
import XCTest

/// The daemon's socket end to end: a real server on a temporary socket, real sandboxes behind it.
final class WireTests: XCTestCase {
    var live: LiveService!
    var channel: Channel!
    var server: RPCServer!
    var path = ""

    override func setUp() async throws {
        try requireRoot()
        live = try await LiveService(pool: 2) { $0.maxMessageBytes = 4096 }
        await live.waitUntilReady()
        let tracker = RequestTracker()
        server = RPCServer(dispatcher: Dispatcher(service: live.service, isShuttingDown: { tracker.isStopping }),
                           tracker: tracker, maxMessageBytes: live.config.maxMessageBytes, logger: testLogger)
        path = "/tmp/codesand-wire-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        channel = try await server.bind(path: path, group: "codesand", mode: 0o660)
    }

    override func tearDown() async throws {
        try? await channel?.close()
        try? await server?.shutdownEventLoops()
        live?.shutdown()
    }

    func runLine(id: Int, _ code: String, extra: String = "") -> String {
        let codeJSON = String(decoding: try! JSONEncoder().encode(code), as: UTF8.self)
        return #"{"jsonrpc":"2.0","id":\#(id),"method":"run","params":{"language":"python3","code":\#(codeJSON)\#(extra)}}"#
    }

    func test_the_socket_gets_mode_0660() throws {
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o660)
    }

    func test_print_1_over_the_wire() throws {
        let c = try RawClient(path: path)
        let r = c.call(runLine(id: 1, "print(1)"))
        XCTAssertEqual(r?["id"] as? Int, 1)
        XCTAssertEqual(r?["jsonrpc"] as? String, "2.0")
        XCTAssertEqual(result(r)?["stdout"] as? String, "1\n")
        XCTAssertEqual(result(r)?["exit_code"] as? Int, 0)
        XCTAssertEqual(result(r)?["status"] as? String, "ok")
    }

    func test_bad_requests_get_errors_and_the_connection_keeps_serving() throws {
        let c = try RawClient(path: path)
        c.send(#"{"jsonrpc":"2.0","id":9,"method":"# + "\n")
        XCTAssertEqual(errorCode(c.readJSON() as? [String: Any]), -32700)
        XCTAssertEqual(errorCode(c.call(#"{"jsonrpc":"2.0","id":2,"method":"nosuch"}"#)), -32601)
        let missing = c.call(#"{"jsonrpc":"2.0","id":3,"method":"run","params":{"language":"python3"}}"#)
        XCTAssertEqual(errorCode(missing), -32602)
        XCTAssertTrue(((missing?["error"] as? [String: Any])?["message"] as? String ?? "").contains("code"))
        let unknown = c.call(#"{"jsonrpc":"2.0","id":4,"method":"run","params":{"language":"cobol-9000","code":"x"}}"#)
        XCTAssertEqual(errorCode(unknown), -32001)
        let known = ((unknown?["error"] as? [String: Any])?["data"] as? [String: Any])?["known"] as? [String]
        XCTAssertEqual(known?.contains("python3"), true)
        c.send([0xff, 0xfe, 0x0a])
        XCTAssertEqual(errorCode(c.readJSON() as? [String: Any]), -32700)
        XCTAssertEqual(errorCode(c.call(#"{"jsonrpc":"2.0","id":5,"method":"run","params":{"language":"python3","code":1}}"#)), -32602)
        XCTAssertEqual(result(c.call(runLine(id: 6, "print(3)")))?["stdout"] as? String, "3\n")
    }

    func test_string_ids_are_echoed_and_notifications_get_no_reply() throws {
        let c = try RawClient(path: path)
        c.send(#"{"jsonrpc":"2.0","method":"status"}"# + "\n")
        let r = c.call(#"{"jsonrpc":"2.0","id":"abc-1","method":"status"}"#)
        XCTAssertEqual(r?["id"] as? String, "abc-1")  // the notification's reply would have come first
        XCTAssertEqual(result(r)?["cgroup"] as? String, "v1")
    }

    func test_a_batch_is_answered_by_an_array() throws {
        let c = try RawClient(path: path)
        c.send("[" + runLine(id: 1, "print('a')") + #",{"jsonrpc":"2.0","method":"status"},{"jsonrpc":"2.0","id":2,"method":"languages"}]"# + "\n")
        let replies = c.readJSON() as? [[String: Any]]
        XCTAssertEqual(replies?.count, 2)
        XCTAssertEqual(Set(replies?.compactMap { $0["id"] as? Int } ?? []), [1, 2])
    }

    func test_an_over_long_message_gets_32600_and_the_connection_closes() throws {
        let c = try RawClient(path: path)
        c.send(runLine(id: 1, String(repeating: "#", count: 8000)) + "\n")
        let r = c.readJSON() as? [String: Any]
        XCTAssertEqual(errorCode(r), -32600)
        XCTAssertTrue(r?["id"] is NSNull)
        XCTAssertTrue(c.isClosedByServer())
        let again = try RawClient(path: path)
        XCTAssertEqual(result(again.call(runLine(id: 2, "print(4)")))?["stdout"] as? String, "4\n")
    }

    func test_a_client_that_closes_its_sending_side_still_gets_its_replies_then_eof() throws {
        let c = try RawClient(path: path)
        c.send(runLine(id: 1, "import time; time.sleep(0.3); print('late')") + "\n" + runLine(id: 2, "print('last')"))
        c.shutdownWrite()  // the second message has no "\n": ending the input completes it
        let replies = [c.readJSON(), c.readJSON()].compactMap { $0 as? [String: Any] }
        XCTAssertEqual(Set(replies.compactMap { result($0)?["stdout"] as? String }), ["late\n", "last\n"])
        XCTAssertNil(c.readLine(), "the daemon closes after the last reply")
    }

    func test_a_stream_run_sends_its_output_as_notifications_before_the_result() throws {
        let c = try RawClient(path: path)
        // "é" is written in two halves: no notification may carry half a character.
        let code = "import sys, time\nfor i in range(3):\n    print(i, flush=True); time.sleep(0.1)\nsys.stdout.buffer.write(b'\\xc3'); sys.stdout.flush(); time.sleep(0.1)\nsys.stdout.buffer.write(b'\\xa9\\n')\nprint('err', file=sys.stderr)"
        c.send(runLine(id: 7, code, extra: #","stream":true"#) + "\n")
        var texts: [String] = [], streams: [String] = []
        var final: [String: Any]? = nil
        while final == nil, let m = c.readJSON() as? [String: Any] {
            if m["method"] as? String == "run.output" {
                let p = m["params"] as? [String: Any]
                XCTAssertEqual(p?["id"] as? Int, 7)
                XCTAssertNil(m["id"], "a notification has no id")
                texts.append(p?["text"] as? String ?? "")
                streams.append(p?["stream"] as? String ?? "")
            } else {
                final = m
            }
        }
        XCTAssertEqual(final?["id"] as? Int, 7)
        let stdout = zip(texts, streams).filter { $0.1 == "stdout" }.map(\.0).joined()
        XCTAssertEqual(stdout, "0\n1\n2\né\n")
        XCTAssertEqual(result(final)?["stdout"] as? String, stdout)
        XCTAssertGreaterThanOrEqual(texts.count, 4, "the lines came one by one: \(texts)")
        XCTAssertFalse(texts.contains { $0.contains("\u{FFFD}") }, "\(texts)")
        XCTAssertTrue(streams.contains("stderr"))
    }

    func test_hundreds_of_pipelined_requests_on_one_connection_are_all_answered() throws {
        // More than a connection may have in flight: the daemon stops reading for a while, loses nothing.
        let c = try RawClient(path: path)
        let count = 300
        c.send((1...count).map { #"{"jsonrpc":"2.0","id":\#($0),"method":"status"}"# + "\n" }.joined())
        var ids = Set<Int>()
        while ids.count < count, let m = c.readJSON() as? [String: Any] { ids.insert(m["id"] as? Int ?? -1) }
        XCTAssertEqual(ids, Set(1...count))
    }

    func test_requests_in_flight_are_answered_in_any_order_by_id() throws {
        let c = try RawClient(path: path)
        c.send(runLine(id: 1, "import time; time.sleep(0.5); print('slow')") + "\n")
        c.send(runLine(id: 2, "print('fast')") + "\n")
        let first = c.readJSON() as? [String: Any], second = c.readJSON() as? [String: Any]
        XCTAssertEqual(first?["id"] as? Int, 2)
        XCTAssertEqual(result(second)?["stdout"] as? String, "slow\n")
    }

    func test_a_client_that_disconnects_mid_run_frees_its_sandbox() async throws {
        do {
            let c = try RawClient(path: path)
            c.send(runLine(id: 1, "import time; time.sleep(60)") + "\n")
            try await Task.sleep(for: .milliseconds(300))
        }  // closed here
        try await Task.sleep(for: .milliseconds(500))
        let leftovers = await live.leftoverPids()
        XCTAssertEqual(leftovers, [])
        XCTAssertEqual(live.service.status().running, 0)
    }

    func test_the_swift_client_runs_concurrent_requests_on_one_connection() async throws {
        let client = try await CodesandClient.connect(socketPath: path)
        let results = try await withThrowingTaskGroup(of: (Int, RunResult).self) { group in
            for i in 0..<5 {
                group.addTask { (i, try await client.run(RunParams(language: "python3", code: "print(\(i) + 100)"))) }
            }
            var out: [Int: RunResult] = [:]
            for try await (i, r) in group { out[i] = r }
            return out
        }
        for i in 0..<5 { XCTAssertEqual(results[i]?.stdout, "\(i + 100)\n") }
        let langs = try await client.languages()
        XCTAssertTrue(langs.contains { $0.name == "python3" && $0.version.first?.isNumber == true })
        await client.close()
    }
}
