import CodesandProtocol
import Foundation
import XCTest

final class EnvelopeTests: XCTestCase {
    func parse(_ s: String) -> RPCMessage { RPCParser.parse(Array(s.utf8)) }

    func request(_ s: String) throws -> RPCRequest {
        guard case .single(.request(let r)) = parse(s) else { throw NotARequest(text: s) }
        return r
    }

    func test_string_and_number_ids_are_kept() throws {
        XCTAssertEqual(try request(#"{"jsonrpc":"2.0","id":"abc","method":"run"}"#).id, .string("abc"))
        XCTAssertEqual(try request(#"{"jsonrpc":"2.0","id":42,"method":"run"}"#).id, .int(42))
        XCTAssertEqual(try request(#"{"jsonrpc":"2.0","id":-7,"method":"run"}"#).id, .int(-7))
    }

    func test_numeric_ids_keep_their_text_in_the_reply() throws {
        for text in ["12345678901234567890", "-0", "1.50", "2E+3", "42"] {
            let id = try XCTUnwrap(try request(#"{"jsonrpc":"2.0","id":\#(text),"method":"status"}"#).id)
            XCTAssertEqual(id.json, text)
            let reply = String(decoding: RPCEncoder.error(id: id, RPCError(.methodNotFound, "x")), as: UTF8.self)
            XCTAssertTrue(reply.hasSuffix(#","id":\#(text),"jsonrpc":"2.0"}"#), reply)
            XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(reply.utf8)))
        }
        XCTAssertEqual(try request(#"{"jsonrpc":"2.0","id":42,"method":"run"}"#).id, .int(42))
        let s = String(decoding: try RPCEncoder.result(id: .string("a\"/b"), ["x": 1]), as: UTF8.self)
        XCTAssertEqual(s, #"{"id":"a\"/b","jsonrpc":"2.0","result":{"x":1}}"#)
    }

    func test_too_deep_and_repeated_members_are_invalid_requests_with_a_null_id() {
        let deep = #"{"jsonrpc":"2.0","id":1,"method":"status","params":"# + String(repeating: "[", count: 64) + String(repeating: "]", count: 64) + "}"
        guard case .single(.invalid(nil, let e1)) = parse(deep) else { return XCTFail() }
        XCTAssertEqual(e1.code, -32600)
        XCTAssertTrue(e1.message.contains("64"), e1.message)
        guard case .single(.invalid(nil, let e2)) = parse(#"{"jsonrpc":"2.0","id":1,"id":2,"method":"status"}"#) else { return XCTFail() }
        XCTAssertEqual(e2.code, -32600)
        XCTAssertTrue(e2.message.contains(#""id""#), e2.message)
        // 64 levels in all are within the limit.
        let ok = #"{"jsonrpc":"2.0","id":1,"method":"status","params":{"x":"# + String(repeating: "[", count: 62) + String(repeating: "]", count: 62) + "}}"
        guard case .single(.request) = parse(ok) else { return XCTFail() }
    }

    func test_a_parse_error_says_where() {
        guard case .parseError(let e) = parse(#"{"jsonrpc":"2.0","id":1,}"#) else { return XCTFail() }
        XCTAssertTrue(e.message.contains("at byte 24"), e.message)
    }

    func test_missing_id_is_a_notification_and_null_id_is_not() throws {
        XCTAssertTrue(try request(#"{"jsonrpc":"2.0","method":"status"}"#).isNotification)
        let nullID = try request(#"{"jsonrpc":"2.0","id":null,"method":"status"}"#)
        XCTAssertFalse(nullID.isNotification)
        XCTAssertNil(nullID.id)
    }

    func test_not_json_is_a_parse_error() {
        guard case .parseError(let e) = parse(#"{"jsonrpc":"2.0","id":9,"method":"#) else { return XCTFail() }
        XCTAssertEqual(e.code, -32700)
    }

    func test_invalid_utf8_is_a_parse_error() {
        var bytes = Array(#"{"jsonrpc":"2.0","id":1,"method":"run","params":{"code":""#.utf8)
        bytes += [0xff, 0xfe] + Array(#""}}"#.utf8)
        guard case .parseError(let e) = RPCParser.parse(bytes) else { return XCTFail() }
        XCTAssertEqual(e.code, -32700)
    }

    func test_wrong_version_is_invalid_request_keeping_the_id() {
        guard case .single(.invalid(let id, let e)) = parse(#"{"jsonrpc":"1.0","id":3,"method":"run"}"#) else { return XCTFail() }
        XCTAssertEqual(id, .int(3))
        XCTAssertEqual(e.code, -32600)
    }

    func test_object_id_and_scalar_params_are_invalid_requests() {
        guard case .single(.invalid(nil, let e1)) = parse(#"{"jsonrpc":"2.0","id":{},"method":"run"}"#) else { return XCTFail() }
        XCTAssertEqual(e1.code, -32600)
        guard case .single(.invalid(_, let e2)) = parse(#"{"jsonrpc":"2.0","id":1,"method":"run","params":5}"#) else { return XCTFail() }
        XCTAssertEqual(e2.code, -32600)
    }

    func test_batch_and_empty_batch() {
        guard case .batch(let items) = parse(#"[{"jsonrpc":"2.0","id":1,"method":"a"},5]"#) else { return XCTFail() }
        XCTAssertEqual(items.count, 2)
        if case .invalid = items[1] {} else { XCTFail("5 is not a request") }
        guard case .single(.invalid(_, let e)) = parse("[]") else { return XCTFail() }
        XCTAssertEqual(e.code, -32600)
    }

    func test_a_batch_past_the_maximum_is_one_invalid_request() {
        let item = #"{"jsonrpc":"2.0","id":1,"method":"status"}"#
        let line = "[" + Array(repeating: item, count: RPCParser.maxBatch + 1).joined(separator: ",") + "]"
        guard case .single(.invalid(nil, let e)) = parse(line) else { return XCTFail() }
        XCTAssertEqual(e.code, -32600)
        guard case .batch(let items) = parse("[" + Array(repeating: item, count: RPCParser.maxBatch).joined(separator: ",") + "]") else {
            return XCTFail()
        }
        XCTAssertEqual(items.count, RPCParser.maxBatch)
    }

    func test_error_reply_has_null_id_when_unknown() throws {
        let data = RPCEncoder.error(id: nil, RPCError(.parseError, "x"))
        let obj = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        XCTAssertTrue(obj["id"] is NSNull)
        XCTAssertEqual(obj["jsonrpc"] as? String, "2.0")
        XCTAssertEqual((obj["error"] as? [String: Any])?["code"] as? Int, -32700)
    }
}

struct NotARequest: Error { let text: String }
