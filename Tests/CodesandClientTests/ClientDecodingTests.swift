@testable import CodesandClient
import CodesandProtocol
import Foundation
import NIOCore
import NIOEmbedded
import XCTest

/// The client's side of the wire: reading reply lines, and matching them to the calls in flight.
final class ClientDecodingTests: XCTestCase {
    // MARK: Reply.parse

    func test_result_member_is_kept_byte_for_byte() throws {
        let result = #"{"b": 1,  "a":[1,2,{"x":"}]\"{"}], "t":true}"#
        let reply = try parse(#"{"jsonrpc":"2.0","id":7,"result":"# + result + "}")
        XCTAssertEqual(reply.id, .int(7))
        guard case .result(let bytes) = reply.outcome else { return XCTFail("expected a result") }
        XCTAssertEqual(String(buffer: bytes), result)
    }

    func test_members_in_any_order_and_whitespace_are_accepted() throws {
        let reply = try parse(" {\"result\" : null ,\r\n \"id\": \"abc\", \"jsonrpc\":\"2.0\"}\t")
        XCTAssertEqual(reply.id, .string("abc"))
        guard case .result(let bytes) = reply.outcome else { return XCTFail("expected a result") }
        XCTAssertEqual(String(buffer: bytes), "null")
    }

    func test_error_reply_decodes_code_message_and_data() throws {
        let reply = try parse(#"{"error":{"code":-32002,"data":{"retry_after_ms":250},"message":"busy"},"id":3,"jsonrpc":"2.0"}"#)
        guard case .error(let error) = reply.outcome else { return XCTFail("expected an error") }
        XCTAssertEqual(error.knownCode, .busy)
        XCTAssertEqual(error.message, "busy")
        XCTAssertEqual(error.data, .object(["retry_after_ms": .int(250)]))
    }

    func test_unknown_error_code_has_no_known_code() throws {
        let reply = try parse(#"{"jsonrpc":"2.0","id":1,"error":{"code":-31999,"message":"new"}}"#)
        guard case .error(let error) = reply.outcome else { return XCTFail("expected an error") }
        XCTAssertNil(error.knownCode)
        XCTAssertEqual(error.code, -31999)
    }

    func test_null_id_is_read_as_no_id() throws {
        let reply = try parse(#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"too long"}}"#)
        XCTAssertNil(reply.id)
    }

    func test_malformed_replies_are_protocol_violations() {
        let bad = [
            "not json",
            #"[{"jsonrpc":"2.0","id":1,"result":1}]"#,                       // a batch we never sent
            #"{"id":1,"result":1}"#,                                          // no jsonrpc
            #"{"jsonrpc":"1.0","id":1,"result":1}"#,
            #"{"jsonrpc":"2.0","result":1}"#,                                 // no id
            #"{"jsonrpc":"2.0","id":1}"#,                                     // neither result nor error
            #"{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"x"}}"#,
            #"{"jsonrpc":"2.0","id":1,"result":1} x"#,                        // trailing data
            #"{"jsonrpc":"2.0","id":1,"result":1,"result":2}"#,               // duplicate member
            #"{"jsonrpc":"2.0","id":1,"result":"unterminated}"#,
            #"{"jsonrpc":"2.0","id":[1],"result":1}"#,                        // id not a string or number
            #"{"jsonrpc":"2.0","id":1,"error":{"message":"no code"}}"#,
            #"{"jsonrpc":"2.0","id":1,"result":1,"extra":0}"#,
        ]
        for line in bad {
            XCTAssertThrowsError(try parse(line), line) { error in
                guard case .protocolViolation = error as? CodesandClientError else {
                    return XCTFail("\(line): \(error)")
                }
            }
        }
    }

    func test_run_result_with_null_exit_code_decodes() throws {
        let json = #"""
            {"cpu_ms":998,"exit_code":null,"memory_peak_bytes":1234,"oom_killed":false,\#
            "output":[{"stream":"stdout","text":"a\n"},{"stream":"stderr","text":"\u0000\ufffd"}],\#
            "signal":"SIGKILL","status":"timeout","stderr":"\u0000\ufffd","stdout":"a\n",\#
            "timed_out":true,"truncated":false,"wall_ms":1000}
            """#
        let result = try JSONDecoder().decode(RunResult.self, from: Data(json.utf8))
        XCTAssertEqual(result.status, .timeout)
        XCTAssertNil(result.exitCode)
        XCTAssertEqual(result.signal, "SIGKILL")
        XCTAssertEqual(result.output, [OutputChunk(stream: .stdout, text: "a\n"), OutputChunk(stream: .stderr, text: "\u{0}\u{FFFD}")])
    }

    // MARK: Framing and multiplexing

    func test_replies_in_any_order_reach_their_own_calls() throws {
        let (channel, calls) = try connection(ids: [1, 2, 3])
        try feed(channel, #"{"jsonrpc":"2.0","id":3,"result":"three"}"# + "\n" + #"{"jsonrpc":"2.0","id":1,"result":"one"}"# + "\n")
        try feed(channel, #"{"jsonrpc":"2.0","id":2,"error":{"code":-32001,"message":"unknown language"}}"# + "\n")
        XCTAssertEqual(calls[1]?.resultText, #""one""#)
        XCTAssertEqual(calls[3]?.resultText, #""three""#)
        XCTAssertEqual(calls[2]?.rpcError?.knownCode, .unknownLanguage)
    }

    func test_a_reply_fed_one_byte_at_a_time_is_one_message() throws {
        let (channel, calls) = try connection(ids: [1])
        for byte in #"{"jsonrpc":"2.0","id":1,"result":[1,2]}"# .utf8 + [UInt8(ascii: "\n")] {
            XCTAssertNil(calls[1]?.outcome)
            try feed(channel, String(decoding: [byte], as: UTF8.self))
        }
        XCTAssertEqual(calls[1]?.resultText, "[1,2]")
    }

    func test_timeout_fails_only_that_call_and_its_late_reply_is_dropped() throws {
        let (channel, calls) = try connection(ids: [1], timeout: .milliseconds(100))
        let (_, others) = try connection(channel: channel, ids: [2])
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(100))
        XCTAssertEqual(calls[1]?.error, .timeout)
        XCTAssertNil(others[2]?.outcome)
        try feed(channel, #"{"jsonrpc":"2.0","id":1,"result":"late"}"# + "\n" + #"{"jsonrpc":"2.0","id":2,"result":"ok"}"# + "\n")
        XCTAssertEqual(calls[1]?.error, .timeout)
        XCTAssertEqual(others[2]?.resultText, #""ok""#)
    }

    func test_closed_connection_fails_every_pending_call_and_later_ones() throws {
        let (channel, calls) = try connection(ids: [1, 2])
        try channel.close().wait()
        XCTAssertEqual(calls[1]?.error, .connectionClosed)
        XCTAssertEqual(calls[2]?.error, .connectionClosed)
    }

    func test_null_id_error_fails_every_pending_call_with_it() throws {
        let (channel, calls) = try connection(ids: [1, 2])
        try feed(channel, #"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"message too long"}}"# + "\n")
        for id in [1, 2] as [Int64] {
            guard case .rpc(let error)? = calls[id]?.error else { return XCTFail("\(String(describing: calls[id]?.outcome))") }
            XCTAssertEqual(error.knownCode, .invalidRequest)
        }
        XCTAssertFalse(channel.isActive)
    }

    func test_garbage_line_fails_pending_calls_and_closes() throws {
        let (channel, calls) = try connection(ids: [1])
        try feed(channel, "hello\n")
        guard case .protocolViolation? = calls[1]?.error else { return XCTFail("\(String(describing: calls[1]?.outcome))") }
        XCTAssertFalse(channel.isActive)
    }

    func test_line_over_the_limit_fails_pending_calls() throws {
        let (channel, calls) = try connection(ids: [1], maxLength: 64)
        try feed(channel, String(repeating: "x", count: 65))
        guard case .protocolViolation? = calls[1]?.error else { return XCTFail("\(String(describing: calls[1]?.outcome))") }
    }

    func test_requests_are_written_as_given() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers(ByteToMessageHandler(ReplyLineDecoder()), CallMultiplexer())
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/x")).wait()
        let line = ByteBuffer(string: #"{"id":1,"jsonrpc":"2.0","method":"status"}"# + "\n")
        try channel.writeOutbound(OutgoingCall(id: 1, line: line, timeout: nil, promise: channel.eventLoop.makePromise()))
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self), line)
    }

    // MARK: Helpers

    private func parse(_ line: String) throws -> Reply {
        try Reply.parse(ByteBuffer(string: line))
    }

    private func feed(_ channel: EmbeddedChannel, _ text: String) throws {
        try channel.writeInbound(ByteBuffer(string: text))
    }

    /// Observes one call's promise; the embedded loop runs on this thread, so completion is immediate.
    final class CallBox {
        var outcome: Result<Reply.Outcome, Error>?
        var error: CodesandClientError? {
            if case .failure(let e)? = outcome { return e as? CodesandClientError }
            return nil
        }
        var resultText: String? {
            if case .success(.result(let b))? = outcome { return String(buffer: b) }
            return nil
        }
        var rpcError: RPCError? {
            if case .success(.error(let e))? = outcome { return e }
            return nil
        }
    }

    private func connection(channel existing: EmbeddedChannel? = nil, ids: [Int64], timeout: TimeAmount? = nil,
                            maxLength: Int = ReplyLineDecoder.defaultMaxLength) throws -> (EmbeddedChannel, [Int64: CallBox]) {
        let channel: EmbeddedChannel
        if let existing {
            channel = existing
        } else {
            channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandlers(ByteToMessageHandler(ReplyLineDecoder(maxLength: maxLength)), CallMultiplexer())
            try channel.connect(to: SocketAddress(unixDomainSocketPath: "/x")).wait()
        }
        var boxes: [Int64: CallBox] = [:]
        for id in ids {
            let box = CallBox()
            let promise = channel.eventLoop.makePromise(of: Reply.Outcome.self)
            promise.futureResult.assumeIsolated().whenComplete { box.outcome = $0 }
            let line = ByteBuffer(string: #"{"id":\#(id),"jsonrpc":"2.0","method":"status"}"# + "\n")
            try channel.writeOutbound(OutgoingCall(id: id, line: line, timeout: timeout, promise: promise))
            _ = try channel.readOutbound(as: ByteBuffer.self)
            boxes[id] = box
        }
        return (channel, boxes)
    }
}
