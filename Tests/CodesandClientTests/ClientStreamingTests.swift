@testable import CodesandClient
import CodesandProtocol
import Foundation
import NIOCore
import NIOEmbedded
import Synchronization
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `run.output` notifications: routed by the multiplexer to the call they name, and turned into a
/// ``RunStream`` by the client.
final class ClientStreamingTests: XCTestCase {
    // MARK: Parsing

    func test_a_message_with_a_method_is_a_notification() throws {
        let line = #"{"jsonrpc":"2.0","method":"run.output","params":{"id":1,"stream":"stdout","text":"a"}}"#
        guard case .notification(let n) = try InboundMessage.parse(ByteBuffer(string: line)) else { return XCTFail("not a notification") }
        XCTAssertEqual(n.method, "run.output")
        XCTAssertEqual(n.params.map { String(buffer: $0) }, #"{"id":1,"stream":"stdout","text":"a"}"#)
        guard case .notification(let bare) = try InboundMessage.parse(ByteBuffer(string: #"{"method":"x","jsonrpc":"2.0"}"#)) else {
            return XCTFail("not a notification")
        }
        XCTAssertNil(bare.params)
    }

    func test_malformed_notifications_are_protocol_violations() {
        let bad = [
            #"{"jsonrpc":"2.0","id":1,"method":"run.output","params":{}}"#,  // a request to the client
            #"{"jsonrpc":"2.0","method":7}"#,
            #"{"method":"run.output","params":{}}"#,                          // no jsonrpc
            #"{"jsonrpc":"2.0","method":"x","result":1}"#,
        ]
        for line in bad {
            XCTAssertThrowsError(try InboundMessage.parse(ByteBuffer(string: line)), line) { error in
                guard case .protocolViolation = error as? CodesandClientError else { return XCTFail("\(line): \(error)") }
            }
        }
        XCTAssertThrowsError(try Reply.parse(ByteBuffer(string: #"{"jsonrpc":"2.0","method":"x"}"#)))
    }

    // MARK: Multiplexer

    func test_output_reaches_its_call_in_order_before_the_reply() throws {
        let (channel, log) = try connection(streaming: [1])
        try feed(channel, output(1, "stdout", "a\n") + output(1, "stderr", "é") + output(1, "stdout", "b\n"))
        XCTAssertEqual(log.events, ["1 stdout a\n", "1 stderr é", "1 stdout b\n"])
        try feed(channel, #"{"jsonrpc":"2.0","id":1,"result":{"x":1}}"# + "\n")
        XCTAssertEqual(log.events, ["1 stdout a\n", "1 stderr é", "1 stdout b\n", #"1 result {"x":1}"#])
    }

    func test_output_for_another_id_is_not_given_to_this_call() throws {
        let (channel, log) = try connection(streaming: [1, 2])
        try feed(channel, output(2, "stdout", "two") + output(1, "stdout", "one") + output(9, "stdout", "nobody"))
        try feed(channel, #"{"jsonrpc":"2.0","method":"run.output","params":{"id":"1","stream":"stdout","text":"string id"}}"# + "\n")
        XCTAssertEqual(log.events, ["2 stdout two", "1 stdout one"])
        XCTAssertTrue(channel.isActive)
    }

    func test_output_for_a_call_that_did_not_ask_for_it_is_ignored() throws {
        let (channel, log) = try connection(streaming: [], plain: [1])
        try feed(channel, output(1, "stdout", "x") + #"{"jsonrpc":"2.0","id":1,"result":2}"# + "\n")
        XCTAssertEqual(log.events, ["1 result 2"])
    }

    func test_an_error_reply_after_output_fails_the_call_with_it() throws {
        let (channel, log) = try connection(streaming: [1])
        try feed(channel, output(1, "stderr", "cc: warning\n"))
        try feed(channel, #"{"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"busy"}}"# + "\n")
        XCTAssertEqual(log.events, ["1 stderr cc: warning\n", "1 error -32002"])
    }

    func test_output_after_the_final_reply_is_ignored() throws {
        let (channel, log) = try connection(streaming: [1, 2])
        try feed(channel, output(1, "stdout", "a") + #"{"jsonrpc":"2.0","id":1,"result":0}"# + "\n" + output(1, "stdout", "late"))
        try feed(channel, output(2, "stdout", "b"))
        XCTAssertEqual(log.events, ["1 stdout a", "1 result 0", "2 stdout b"])
        XCTAssertTrue(channel.isActive)
    }

    func test_other_notifications_are_ignored() throws {
        let (channel, log) = try connection(streaming: [1])
        try feed(channel, #"{"jsonrpc":"2.0","method":"daemon.news"}"# + "\n" + #"{"jsonrpc":"2.0","method":"x","params":[1]}"# + "\n")
        try feed(channel, #"{"jsonrpc":"2.0","id":1,"result":null}"# + "\n")
        XCTAssertEqual(log.events, ["1 result null"])
    }

    func test_a_malformed_run_output_fails_pending_calls_and_closes() throws {
        let (channel, log) = try connection(streaming: [1])
        try feed(channel, #"{"jsonrpc":"2.0","method":"run.output","params":{"id":1,"stream":"stdin","text":"x"}}"# + "\n")
        XCTAssertEqual(log.events.count, 1)
        XCTAssertTrue(log.events[0].hasPrefix("1 failed protocol violation: a run.output notification is malformed"), log.events[0])
        XCTAssertFalse(channel.isActive)
    }

    // MARK: RunStream over a socket

    func test_run_streaming_yields_output_then_the_result() async throws {
        let fake = try ScriptedDaemon([
            .line(output("$ID", "stdout", "0\n")), .pause, .line(output("$ID", "stderr", "oops\n")), .pause,
            .line(output("$ID", "stdout", "1\n")), .line(#"{"jsonrpc":"2.0","id":$ID,"result":\#(Self.resultJSON)}"#),
            .line(output("$ID", "stdout", "after the end\n")),
        ])
        defer { fake.stop() }
        let client = try await CodesandClient.connect(socketPath: fake.path)
        var events: [RunEvent] = []
        for try await event in client.runStreaming(RunParams(language: "python3", code: "x")) { events.append(event) }
        XCTAssertEqual(events.count, 4)
        XCTAssertEqual(Array(events.prefix(3)), [.output(OutputChunk(stream: .stdout, text: "0\n")),
                                                 .output(OutputChunk(stream: .stderr, text: "oops\n")),
                                                 .output(OutputChunk(stream: .stdout, text: "1\n"))])
        guard case .finished(let result)? = events.last else { return XCTFail("no result: \(events)") }
        XCTAssertEqual(result.stdout, "0\n1\n")
        XCTAssertTrue(fake.requests.first?.contains(#""stream":true"#) == true, "\(fake.requests)")
        // The connection is still good for the next call.
        let next = try await client.runStreaming(RunParams(language: "python3", code: "x")).collect()
        XCTAssertEqual(next.output.map(\.text), ["0\n", "oops\n", "1\n"])
        await client.close()
    }

    func test_run_streaming_throws_an_error_reply() async throws {
        let fake = try ScriptedDaemon([.line(#"{"jsonrpc":"2.0","id":$ID,"error":{"code":-32001,"message":"unknown language"}}"#)])
        defer { fake.stop() }
        let client = try await CodesandClient.connect(socketPath: fake.path)
        var events: [RunEvent] = []
        do {
            for try await event in client.runStreaming(RunParams(language: "cobol", code: "x")) { events.append(event) }
            XCTFail("no error")
        } catch {
            XCTAssertEqual(error.rpcCode, .unknownLanguage)  // typed: `error` is a CodesandClientError
        }
        XCTAssertEqual(events, [])
        await client.close()
    }

    func test_run_streaming_throws_connection_closed_when_the_daemon_hangs_up() async throws {
        let fake = try ScriptedDaemon([.line(output("$ID", "stdout", "a")), .hangUp])
        defer { fake.stop() }
        let client = try await CodesandClient.connect(socketPath: fake.path)
        var events: [RunEvent] = []
        do {
            for try await event in client.runStreaming(RunParams(language: "python3", code: "x")) { events.append(event) }
            XCTFail("no error")
        } catch {
            XCTAssertEqual(error, .connectionClosed)
        }
        XCTAssertEqual(events, [.output(OutputChunk(stream: .stdout, text: "a"))])
        await client.close()
    }

    func test_cancelling_the_consuming_task_cancels_the_call() async throws {
        let fake = try ScriptedDaemon([.line(output("$ID", "stdout", "started"))])  // and no reply
        defer { fake.stop() }
        let client = try await CodesandClient.connect(socketPath: fake.path)
        let sawOutput = AsyncStream.makeStream(of: Void.self)
        let consumer = Task { () throws(CodesandClientError) -> [RunEvent] in
            var events: [RunEvent] = []
            for try await event in client.runStreaming(RunParams(language: "python3", code: "x")) {
                events.append(event)
                sawOutput.continuation.yield()
            }
            return events
        }
        for await _ in sawOutput.stream { break }
        consumer.cancel()
        let outcome = await consumer.result
        XCTAssertThrowsError(try outcome.get()) { XCTAssertEqual($0 as? CodesandClientError, .cancelled) }
        await client.close()
    }

    // MARK: Helpers

    static let resultJSON = #"{"cpu_ms":1,"exit_code":0,"memory_peak_bytes":1,"oom_killed":false,"output":[{"stream":"stdout","text":"0\n"},{"stream":"stderr","text":"oops\n"},{"stream":"stdout","text":"1\n"}],"signal":null,"status":"ok","stderr":"oops\n","stdout":"0\n1\n","timed_out":false,"truncated":false,"wall_ms":5}"#

    private func output(_ id: Int64, _ stream: String, _ text: String) -> String {
        output("\(id)", stream, text) + "\n"
    }

    private func output(_ id: String, _ stream: String, _ text: String) -> String {
        let encoded = String(decoding: try! JSONEncoder().encode(text), as: UTF8.self)
        return #"{"jsonrpc":"2.0","method":"run.output","params":{"id":\#(id),"stream":"\#(stream)","text":\#(encoded)}}"#
    }

    private func feed(_ channel: EmbeddedChannel, _ text: String) throws {
        try channel.writeInbound(ByteBuffer(string: text))
    }

    /// Everything that happened to the calls, in order: "id stream text", "id result json",
    /// "id error code", "id failed description". The embedded loop runs on this thread.
    final class Log: @unchecked Sendable {
        var events: [String] = []
    }

    private func connection(streaming: [Int64], plain: [Int64] = []) throws -> (EmbeddedChannel, Log) {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers(ByteToMessageHandler(ReplyLineDecoder()), CallMultiplexer())
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/x")).wait()
        let log = Log()
        for id in streaming + plain {
            let promise = channel.eventLoop.makePromise(of: Reply.Outcome.self)
            promise.futureResult.assumeIsolated().whenComplete { outcome in
                switch outcome {
                case .success(.result(let bytes)): log.events.append("\(id) result \(String(buffer: bytes))")
                case .success(.error(let error)): log.events.append("\(id) error \(error.code)")
                case .failure(let error): log.events.append("\(id) failed \(error)")
                }
            }
            var onOutput: (@Sendable (OutputChunk) -> Void)?
            if streaming.contains(id) {
                onOutput = { chunk in log.events.append("\(id) \(chunk.stream.rawValue) \(chunk.text)") }
            }
            let line = ByteBuffer(string: #"{"id":\#(id),"jsonrpc":"2.0","method":"run","params":{}}"# + "\n")
            try channel.writeOutbound(OutgoingCall(id: id, line: line, timeout: nil, promise: promise, onOutput: onOutput))
            _ = try channel.readOutbound(as: ByteBuffer.self)
        }
        return (channel, log)
    }
}

extension CodesandClientError {
    var rpcCode: RPCErrorCode? {
        if case .rpc(let e) = self { return e.knownCode }
        return nil
    }
}
