@testable import CodesandServer
import NIOCore
import NIOEmbedded
import XCTest

final class LineFrameDecoderTests: XCTestCase {
    func channel(max: Int = 64) throws -> EmbeddedChannel {
        let ch = EmbeddedChannel()
        try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maxLength: max)))
        return ch
    }

    func lines(_ ch: EmbeddedChannel) throws -> [String] {
        var out: [String] = []
        while let frame = try ch.readInbound(as: LineFrame.self) {
            switch frame {
            case .line(let b): out.append(String(buffer: b))
            case .tooLong: out.append("<too long>")
            case .tooLongEnded: out.append("<end of the too long line>")
            }
        }
        return out
    }

    func test_drip_fed_bytes_make_one_line() throws {
        let ch = try channel()
        for byte in Array("{\"a\":1}\n".utf8) {
            try ch.writeInbound(ByteBuffer(bytes: [byte]))
        }
        XCTAssertEqual(try lines(ch), ["{\"a\":1}"])
    }

    func test_several_messages_in_one_read() throws {
        let ch = try channel()
        try ch.writeInbound(ByteBuffer(string: "one\ntwo\nthr"))
        XCTAssertEqual(try lines(ch), ["one", "two"])
        try ch.writeInbound(ByteBuffer(string: "ee\n"))
        XCTAssertEqual(try lines(ch), ["three"])
    }

    func test_an_over_long_line_is_reported_once_its_rest_dropped_to_its_newline_and_then_everything() throws {
        let ch = try channel(max: 8)
        try ch.writeInbound(ByteBuffer(string: "ok\n" + String(repeating: "x", count: 20)))
        XCTAssertEqual(try lines(ch), ["ok", "<too long>"])
        try ch.writeInbound(ByteBuffer(string: String(repeating: "x", count: 100)))
        XCTAssertEqual(try lines(ch), [])
        try ch.writeInbound(ByteBuffer(string: "xx\nnext\n"))
        XCTAssertEqual(try lines(ch), ["<end of the too long line>"])
        try ch.writeInbound(ByteBuffer(string: "more\n"))
        XCTAssertEqual(try lines(ch), [])
    }

    func test_an_over_long_line_with_its_newline_in_the_same_read() throws {
        let ch = try channel(max: 8)
        try ch.writeInbound(ByteBuffer(string: String(repeating: "y", count: 9) + "\nnext\n"))
        XCTAssertEqual(try lines(ch), ["<too long>", "<end of the too long line>"])
    }

    func test_the_rest_of_an_over_long_line_is_dropped_up_to_max_discard_bytes() throws {
        let ch = EmbeddedChannel()
        try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maxLength: 8, maxDiscard: 50)))
        try ch.writeInbound(ByteBuffer(string: String(repeating: "z", count: 20)))
        XCTAssertEqual(try lines(ch), ["<too long>"])
        try ch.writeInbound(ByteBuffer(string: String(repeating: "z", count: 49)))
        XCTAssertEqual(try lines(ch), [])
        try ch.writeInbound(ByteBuffer(string: "z"))
        XCTAssertEqual(try lines(ch), ["<end of the too long line>"])
    }

    func test_a_last_line_without_newline_counts_when_the_input_ends() throws {
        let ch = try channel()
        try ch.writeInbound(ByteBuffer(string: "one\ntwo"))
        XCTAssertEqual(try lines(ch), ["one"])
        _ = try ch.finish()
        XCTAssertEqual(try lines(ch), ["two"])
    }

    func test_a_line_of_exactly_the_maximum_is_accepted() throws {
        let ch = try channel(max: 8)
        try ch.writeInbound(ByteBuffer(string: "12345678\n"))
        XCTAssertEqual(try lines(ch), ["12345678"])
    }
}
