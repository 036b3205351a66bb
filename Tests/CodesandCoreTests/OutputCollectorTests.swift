@testable import CodesandCore
import CodesandProtocol
import XCTest

final class OutputCollectorTests: XCTestCase {
    func test_streams_are_kept_in_arrival_order_and_merged() {
        var c = OutputCollector(maxBytes: 100, maxLines: 100)
        c.append(Array("a".utf8), from: .stdout)
        c.append(Array("b".utf8), from: .stdout)
        c.append(Array("E".utf8), from: .stderr)
        c.append(Array("c".utf8), from: .stdout)
        let t = c.texts()
        XCTAssertEqual(t.stdout, "abc")
        XCTAssertEqual(t.stderr, "E")
        XCTAssertEqual(t.output, [OutputChunk(stream: .stdout, text: "ab"), OutputChunk(stream: .stderr, text: "E"),
                                  OutputChunk(stream: .stdout, text: "c")])
        XCTAssertFalse(c.truncated)
    }

    func test_byte_cap_truncates_and_counts_the_rest() {
        var c = OutputCollector(maxBytes: 5, maxLines: 100)
        c.append(Array("0123456789".utf8), from: .stdout)
        XCTAssertTrue(c.truncated)
        XCTAssertEqual(c.texts().stdout, "01234")
        c.append(Array("more".utf8), from: .stderr)
        XCTAssertEqual(c.droppedBytes, 9)
        XCTAssertEqual(c.texts().stderr, "")
    }

    func test_exactly_the_cap_is_not_truncated() {
        var c = OutputCollector(maxBytes: 4, maxLines: 2)
        c.append(Array("a\nb\n".utf8), from: .stdout)
        XCTAssertFalse(c.truncated)
        c.append(Array("c".utf8), from: .stdout)
        XCTAssertTrue(c.truncated)
        XCTAssertEqual(c.texts().stdout, "a\nb\n")
    }

    func test_line_cap_cuts_after_the_last_allowed_newline() {
        var c = OutputCollector(maxBytes: 1000, maxLines: 3)
        c.append(Array((1...10).map { "line \($0)\n" }.joined().utf8), from: .stdout)
        XCTAssertTrue(c.truncated)
        XCTAssertEqual(c.texts().stdout, "line 1\nline 2\nline 3\n")
    }

    func test_invalid_utf8_becomes_replacement_and_nul_survives() {
        var c = OutputCollector(maxBytes: 100, maxLines: 100)
        c.append([0x6f, 0x6b, 0x20, 0xff, 0x20, 0x61, 0x00, 0x62], from: .stdout)
        XCTAssertEqual(c.texts().stdout, "ok \u{FFFD} a\u{0}b")
    }

    func test_a_character_cut_by_the_cap_is_dropped_not_replaced() {
        var c = OutputCollector(maxBytes: 4, maxLines: 100)
        c.append(Array("ab€".utf8), from: .stdout)  // € is 3 bytes: the cap falls inside it
        XCTAssertEqual(c.texts().stdout, "ab")
    }

    func test_keep_returns_the_part_kept_for_a_streaming_client() {
        var c = OutputCollector(maxBytes: 5, maxLines: 100)
        XCTAssertEqual(Array(c.keep(Array("abc".utf8), from: .stdout)), Array("abc".utf8))
        XCTAssertEqual(Array(c.keep(Array("defg".utf8), from: .stderr)), Array("de".utf8), "cut at the cap")
        XCTAssertTrue(c.keep(Array("h".utf8), from: .stdout).isEmpty, "nothing more once truncated")
        XCTAssertTrue(c.truncated)
    }
}
