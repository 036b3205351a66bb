@testable import CodesandIRCBot
import NIOCore
import NIOEmbedded
import XCTest

/// Framing of what the IRC server sends: lines end in LF (CR optional), whatever the chunking.
final class IRCLineDecoderTests: XCTestCase {
    func lines(_ chunks: [String], maxLength: Int = IRCLineDecoder.defaultMaxLength) throws -> [String] {
        try lines(bytes: chunks.map { Array($0.utf8) }, maxLength: maxLength)
    }

    func lines(bytes chunks: [[UInt8]], maxLength: Int = IRCLineDecoder.defaultMaxLength) throws -> [String] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(IRCLineDecoder(maxLength: maxLength)))
        for chunk in chunks { try channel.writeInbound(ByteBuffer(bytes: chunk)) }
        _ = try channel.finish()
        var out: [String] = []
        while let line = try channel.readInbound(as: String.self) { out.append(line) }
        return out
    }

    func test_crlf_and_bare_lf_both_end_a_line() throws {
        XCTAssertEqual(try lines(["PING :a\r\nPING :b\n"]), ["PING :a", "PING :b"])
    }

    func test_lines_arrive_the_same_byte_by_byte_or_all_at_once() throws {
        let text = ":s 001 bot :Welcome\r\n:a!b@c PRIVMSG #c :!py print('é')\r\n"
        XCTAssertEqual(try lines(bytes: text.utf8.map { [$0] }), try lines([text]))  // é split in two
        XCTAssertEqual(try lines([text]).count, 2)
    }

    func test_an_over_long_line_is_skipped_whole_and_the_next_one_is_read() throws {
        let long = String(repeating: "x", count: 100)
        XCTAssertEqual(try lines([long.prefix(60) + "", long.dropFirst(60) + "\r\nPING :ok\r\n"], maxLength: 50), ["PING :ok"])
    }

    func test_a_partial_line_at_eof_is_not_a_message() throws {
        XCTAssertEqual(try lines(["PING :a\r\nPRIVMSG #c :half"]), ["PING :a"])
    }
}
