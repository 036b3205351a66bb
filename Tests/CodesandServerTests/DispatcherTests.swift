import CodesandCore
import CodesandProtocol
@testable import CodesandServer
import Foundation
import Logging
import Synchronization
import XCTest

/// The dispatcher alone (no socket): one line in, the reply bytes out, over a RunService on a
/// backend whose runs end at once.
final class DispatcherTests: XCTestCase {
    static func service() async throws -> RunService { try await testService(InstantBackend()) }

    final class Notes: Sendable {
        let lines = Mutex([String]())
    }

    func reply(_ d: Dispatcher, _ line: String, notes: Notes? = nil) async throws -> [String: Any]? {
        let data = await d.handle(line: Array(line.utf8), peer: PeerInfo(pid: 1, uid: 0, gid: 0), notify: { note in
            notes?.lines.withLock { $0.append(String(decoding: note, as: UTF8.self)) }
        })
        guard let data else { return nil }
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], String(decoding: data, as: UTF8.self))
    }

    func errorCode(_ reply: [String: Any]?) -> Int? { (reply?["error"] as? [String: Any])?["code"] as? Int }

    func test_a_run_is_answered_with_its_result_and_the_requests_id() async throws {
        let service = try await Self.service()
        defer { service.stop() }
        let r = try await reply(Dispatcher(service: service), #"{"jsonrpc":"2.0","id":"abc","method":"run","params":{"language":"python3","code":"x"}}"#)
        XCTAssertEqual(r?["id"] as? String, "abc")
        XCTAssertEqual((r?["result"] as? [String: Any])?["stdout"] as? String, "out")
    }

    func test_stream_output_is_notified_before_the_reply_is_returned() async throws {
        let service = try await Self.service()
        defer { service.stop() }
        let notes = Notes()
        let r = try await reply(Dispatcher(service: service),
                                #"{"jsonrpc":"2.0","id":4,"method":"run","params":{"language":"python3","code":"x","stream":true}}"#, notes: notes)
        XCTAssertNotNil(r?["result"])
        let seen = notes.lines.withLock { $0 }
        XCTAssertEqual(seen.count, 1)
        XCTAssertTrue(seen.first?.contains(#""method":"run.output""#) == true && seen.first?.contains(#""id":4"#) == true, "\(seen)")
    }

    func test_errors_each_have_their_code() async throws {
        let service = try await Self.service()
        defer { service.stop() }
        let d = Dispatcher(service: service)
        let cases: [(String, RPCErrorCode)] = [
            (#"{"jsonrpc":"2.0","id":1,"method":"nope"}"#, .methodNotFound),
            (#"{"jsonrpc":"2.0","id":1,"method":"run","params":{"language":"cobol","code":"x"}}"#, .unknownLanguage),
            (#"{"jsonrpc":"2.0","id":1,"method":"run","params":{"language":"python3"}}"#, .invalidParams),
            (#"{"jsonrpc":"2.0","id":1,"method":"status","params":{"x":1}}"#, .invalidParams),
            (#"{"jsonrpc":"2.0","id":1,"method":"pool.reload"}"#, .internalError),  // this dispatcher cannot reload
            (#"{"jsonrpc":"2.0","id":1,"method":"run""#, .parseError),
            (#"{"jsonrpc":"1.0","id":1,"method":"run"}"#, .invalidRequest),
        ]
        for (line, code) in cases {
            let r = try await reply(d, line)
            XCTAssertEqual(errorCode(r), code.rawValue, line)
        }
    }

    func test_pool_reload_answers_the_reloaders_result_or_its_error() async throws {
        let service = try await Self.service()
        defer { service.stop() }
        let answer = ReloadResult(rootfs: "host", languages: [.init(name: "python3", version: "3.1")], needsRestart: ["socket"])
        let ok = Dispatcher(service: service, reload: { answer })
        let r = try await reply(ok, #"{"jsonrpc":"2.0","id":9,"method":"pool.reload"}"#)
        let result = try XCTUnwrap(r?["result"] as? [String: Any])
        XCTAssertEqual(result["needs_restart"] as? [String], ["socket"])
        XCTAssertEqual(result["rootfs"] as? String, "host")
        let refused = Dispatcher(service: service, reload: { throw RPCError(.invalidParams, "old one stays: no image") })
        let e = try await reply(refused, #"{"jsonrpc":"2.0","id":9,"method":"pool.reload"}"#)
        XCTAssertEqual(errorCode(e), RPCErrorCode.invalidParams.rawValue)
        XCTAssertTrue("\(e ?? [:])".contains("no image"))
    }

    func test_while_shutting_down_requests_get_minus_32003_with_their_id() async throws {
        let service = try await Self.service()
        defer { service.stop() }
        let r = try await reply(Dispatcher(service: service, isShuttingDown: { true }), #"{"jsonrpc":"2.0","id":12,"method":"status"}"#)
        XCTAssertEqual(errorCode(r), RPCErrorCode.shuttingDown.rawValue)
        XCTAssertEqual(r?["id"] as? Int, 12)
    }

    func test_notifications_get_no_reply_and_a_batch_keeps_its_order_without_them() async throws {
        let service = try await Self.service()
        defer { service.stop() }
        let d = Dispatcher(service: service)
        let none = try await reply(d, #"{"jsonrpc":"2.0","method":"status"}"#)
        XCTAssertNil(none)
        let batch = #"[{"jsonrpc":"2.0","id":1,"method":"run","params":{"language":"python3","code":"x"}},{"jsonrpc":"2.0","method":"status"},{"jsonrpc":"2.0","id":2,"method":"languages"},{"jsonrpc":"2.0","id":3,"method":"nope"}]"#
        let answered = await d.handle(line: Array(batch.utf8), peer: PeerInfo(pid: 1, uid: 0, gid: 0))
        let data = try XCTUnwrap(answered)
        let replies = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        XCTAssertEqual(replies.map { $0["id"] as? Int }, [1, 2, 3])
        XCTAssertNotNil(replies[0]["result"])
        XCTAssertEqual(errorCode(replies[2]), RPCErrorCode.methodNotFound.rawValue)
        let onlyNotes = await d.handle(line: Array(#"[{"jsonrpc":"2.0","method":"status"}]"#.utf8), peer: PeerInfo(pid: 1, uid: 0, gid: 0))
        XCTAssertNil(onlyNotes, "a batch of notifications gets nothing back")
    }
}
