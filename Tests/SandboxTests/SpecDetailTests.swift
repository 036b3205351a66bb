import Foundation
import XCTest

/// JSON-RPC 2.0 to the letter, against the real daemon: ids come back exactly as sent, and params
/// by position are refused even when empty.
final class SpecDetailTests: XCTestCase {
    func test_numeric_ids_are_echoed_with_the_digits_the_client_sent() throws {
        let daemon = try TestDaemon()
        let c = try RawClient(path: daemon.socket)
        for id in ["12345678901234567890", "-98765432109876543210987654321", "1.50", "1e3", "-0", "0", "9223372036854775807"] {
            c.send(#"{"jsonrpc":"2.0","id":\#(id),"method":"status"}"# + "\n")
            let line = try XCTUnwrap(c.readLine())
            XCTAssertTrue(line.hasPrefix(#"{"id":\#(id),"jsonrpc":"2.0","result":{"#), "id \(id): \(line.prefix(120))")
            // The same on an error reply, and in a batch.
            c.send(#"[{"jsonrpc":"2.0","id":\#(id),"method":"nosuch"}]"# + "\n")
            let batch = try XCTUnwrap(c.readLine())
            XCTAssertTrue(batch.contains(#""id":\#(id),"jsonrpc":"2.0"}]"#), "id \(id): \(batch)")
        }
    }

    func test_a_streamed_runs_notifications_carry_its_id_as_sent() throws {
        let daemon = try TestDaemon()
        let c = try RawClient(path: daemon.socket)
        c.send(runRequest(id: 1, "print('x', end='')", extra: #","stream":true"#).replacingOccurrences(of: #""id":1"#, with: #""id":123456789012345678901"#) + "\n")
        let note = try XCTUnwrap(c.readLine())
        XCTAssertTrue(note.contains(#""params":{"id":123456789012345678901,"stream":"stdout","text":"x"}}"#), note)
        XCTAssertTrue(try XCTUnwrap(c.readLine()).hasPrefix(#"{"id":123456789012345678901,"#))
    }

    func test_empty_params_by_position_are_invalid_params_for_every_method() throws {
        let daemon = try TestDaemon()
        let c = try RawClient(path: daemon.socket)
        for (i, method) in ["status", "languages", "metrics", "pool.reload", "run"].enumerated() {
            let r = c.call(#"{"jsonrpc":"2.0","id":\#(i),"method":"\#(method)","params":[]}"#)
            XCTAssertEqual(errorCode(r), -32602, "\(method): \(String(describing: r))")
            XCTAssertEqual(r?["id"] as? Int, i)
            let message = (r?["error"] as? [String: Any])?["message"] as? String ?? ""
            XCTAssertTrue(message.contains("by-name"), message)
        }
        XCTAssertNotNil(result(c.call(#"{"jsonrpc":"2.0","id":9,"method":"status","params":{}}"#)))
    }
}
