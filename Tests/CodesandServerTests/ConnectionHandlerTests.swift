import CodesandCore
import CodesandProtocol
@testable import CodesandServer
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Synchronization
import XCTest

/// One connection's handler on a test channel: framing in, replies out, half-close, over-long lines,
/// and a client that goes away mid-run.
final class ConnectionHandlerTests: XCTestCase {
    struct Harness {
        let channel: NIOAsyncTestingChannel
        let tracker: RequestTracker
        let service: RunService
    }

    func harness(_ backend: some SandboxBackend, maxLine: Int = 4096) async throws -> Harness {
        let service = try await testService(backend)
        let logger = quietLogger
        let tracker = RequestTracker()
        let handler = ConnectionHandler(dispatcher: Dispatcher(service: service), tracker: tracker, logger: logger)
        let channel = NIOAsyncTestingChannel()
        try await channel.pipeline.addHandler(ByteToMessageHandler(LineFrameDecoder(maxLength: maxLine)))
        try await channel.pipeline.addHandler(handler)
        try await channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/x")).get()
        return Harness(channel: channel, tracker: tracker, service: service)
    }

    func send(_ h: Harness, _ text: String) async throws {
        try await h.channel.writeInbound(h.channel.allocator.buffer(string: text))
    }

    /// The next line written to the client, within 5 s.
    func nextLine(_ h: Harness) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if let out = try await h.channel.readOutbound(as: ByteBuffer.self) { return String(buffer: out) }
            try await Task.sleep(for: .milliseconds(5))
        }
        XCTFail("no reply within 5 s")
        return ""
    }

    func waitUntil(_ what: String, _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while !(await condition()) {
            guard ContinuousClock.now < deadline else { return XCTFail("timed out waiting: \(what)") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    func test_each_line_is_answered_with_one_newline_terminated_reply_and_blank_lines_are_ignored() async throws {
        let h = try await harness(InstantBackend())
        defer { h.service.stop() }
        try await send(h, "\r\n  \n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\n{\"jsonrpc\":\"2.0\",\"id\":2,")
        let first = try await nextLine(h)
        XCTAssertTrue(first.hasSuffix("}\n") && first.contains("\"id\":1"), first)
        XCTAssertEqual(first.filter { $0 == "\n" }.count, 1)
        try await send(h, "\"method\":\"languages\"}\n")  // the rest of a line split across reads
        let second = try await nextLine(h)
        XCTAssertTrue(second.contains("\"id\":2") && second.contains("python3"), second)
        try await waitUntil("requests done") { h.tracker.inFlight == 0 }
        let open = try await h.channel.isActive
        XCTAssertTrue(open)
    }

    func test_after_the_client_half_closes_the_reply_is_written_then_the_connection_closes() async throws {
        let h = try await harness(InstantBackend())
        defer { h.service.stop() }
        try await send(h, #"{"jsonrpc":"2.0","id":7,"method":"run","params":{"language":"python3","code":"x"}}"# + "\n")
        h.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        let reply = try await nextLine(h)
        XCTAssertTrue(reply.contains("\"id\":7") && reply.contains("\"result\""), reply)
        try await waitUntil("closed after the last reply") { !(try! await h.channel.isActive) }
    }

    func test_an_over_long_line_gets_minus_32600_and_the_connection_closes_after_its_rest() async throws {
        let h = try await harness(InstantBackend(), maxLine: 64)
        defer { h.service.stop() }
        try await send(h, String(repeating: "x", count: 100))
        let reply = try await nextLine(h)
        XCTAssertTrue(reply.contains("-32600") && reply.contains("\"id\":null"), reply)
        let openWhileDraining = try await h.channel.isActive
        XCTAssertTrue(openWhileDraining, "the client may still be sending the line: it can read the reply first")
        try await send(h, String(repeating: "y", count: 50) + "\n")
        try await waitUntil("closed once the line ended") { !(try! await h.channel.isActive) }
    }

    func test_a_client_that_goes_away_cancels_its_runs() async throws {
        let backend = HoldingBackend()
        let h = try await harness(backend)
        defer { h.service.stop() }
        try await send(h, #"{"jsonrpc":"2.0","id":1,"method":"run","params":{"language":"python3","code":"x"}}"# + "\n")
        try await send(h, #"{"jsonrpc":"2.0","id":2,"method":"run","params":{"language":"python3","code":"x"}}"# + "\n")
        try await waitUntil("both runs started") { backend.started.withLock { $0 } == 2 }
        XCTAssertEqual(h.tracker.inFlight, 2)
        try await h.channel.close()
        try await waitUntil("both runs cancelled") { backend.cancelled.withLock { $0 } == 2 }
        try await waitUntil("nothing in flight") { h.tracker.inFlight == 0 }
    }
}
