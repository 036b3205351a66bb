import CodesandIRCBot
import CodesandProtocol
import XCTest

/// Output shaping for IRC: each rule of `IRCOutputShaper`, one test each.
final class IRCOutputShaperTests: XCTestCase {
    let shaper = IRCOutputShaper()

    func test_output_with_crlf_cannot_inject_a_raw_irc_line() {
        // What `print("hi\r\nPRIVMSG #chan :owned")` writes.
        let lines = shaper.shape("hi\r\nPRIVMSG #chan :owned\n")
        XCTAssertEqual(lines, ["hi", "PRIVMSG #chan :owned"])
        for line in lines {
            let wire = Array("PRIVMSG #chan :\(line)\r\n".utf8)
            // The only CR and LF are the ones ending the bot's own command.
            XCTAssertEqual(wire.filter { $0 == 0x0D || $0 == 0x0A || $0 == 0 }, [0x0D, 0x0A])
            XCTAssertEqual(wire.suffix(2), [0x0D, 0x0A])
        }
    }

    func test_cr_lf_and_crlf_each_end_one_line() {
        XCTAssertEqual(shaper.shape("a\rb\nc\r\nd"), ["a", "b", "c", "d"])
        XCTAssertEqual(shaper.shape("a\u{2028}b\u{85}c"), ["a", "b", "c"])
    }

    func test_crlf_split_across_chunks_is_one_line_break() {
        let out = [OutputChunk(stream: .stdout, text: "one\r"), OutputChunk(stream: .stdout, text: "\ntwo\n")]
        XCTAssertEqual(shaper.shape(out), ["one", "two"])
    }

    func test_blank_lines_are_dropped_because_irc_cannot_send_them() {
        XCTAssertEqual(shaper.shape("a\n\n   \n\u{0}\nb\n"), ["a", "b"])
    }

    func test_nul_c0_del_and_c1_controls_are_dropped_and_a_tab_becomes_a_space() {
        XCTAssertEqual(shaper.shape("a\u{0}b\u{7}c\u{1B}[31md\u{7F}e\u{9B}f\tg"), ["abc[31mdef g"])
    }

    func test_ctcp_and_irc_formatting_codes_from_the_program_are_stripped() {
        XCTAssertEqual(shaper.shape("\u{01}ACTION waves\u{01}"), ["ACTION waves"])
        XCTAssertEqual(shaper.shape("\u{02}bold\u{02} \u{03}4,1red\u{0F} \u{16}\u{1D}\u{1E}\u{1F}\u{11}\u{04}x"), ["bold 4,1red x"])
    }

    func test_more_lines_than_the_limit_end_with_a_count_of_the_rest() {
        let text = (1...20).map { "line \($0)" }.joined(separator: "\n")
        let lines = shaper.shape(text)
        XCTAssertEqual(lines.count, 11)
        XCTAssertEqual(lines.first, "line 1")
        XCTAssertEqual(lines[9], "line 10")
        XCTAssertEqual(lines.last, "(10 more lines)")
        XCTAssertEqual(IRCOutputShaper(maxLines: 3).shape("1\n2\n3\n4"), ["1", "2", "3", "(1 more line)"])
    }

    func test_a_mebibyte_of_short_lines_is_counted_not_kept() {
        let text = String(repeating: "xxxxxxx\n", count: 131_072)
        XCTAssertEqual(shaper.shape(text).last, "(131062 more lines)")
    }

    func test_a_long_line_is_cut_at_a_character_boundary_and_marked() {
        let line = String(repeating: "é🦆a", count: 200)  // 2-, 4- and 1-byte characters
        for limit in 32...64 {
            let shaped = IRCOutputShaper(maxLineBytes: limit).shape(line)
            XCTAssertEqual(shaped.count, 1)
            XCTAssertLessThanOrEqual(shaped[0].utf8.count, limit)
            XCTAssertTrue(shaped[0].hasSuffix("…"))
            XCTAssertTrue(line.hasPrefix(String(shaped[0].dropLast())), "cut inside a character at \(limit)")
        }
        XCTAssertLessThanOrEqual(shaper.shape(line)[0].utf8.count, 400)
    }

    func test_a_line_that_fits_exactly_is_not_cut() {
        let line = String(repeating: "a", count: 400)
        XCTAssertEqual(shaper.shape(line), [line])
    }

    func test_a_leading_trigger_character_gets_a_zero_width_space() {
        for text in ["!py print(1)", ".op me", "@kick x", "$x", "~y", ">z", ",w", "   !padded", "\u{A0}!nbsp", "\u{200B}!zwsp"] {
            XCTAssertEqual(shaper.shape(text), ["\u{200B}" + text], text)
        }
        XCTAssertEqual(shaper.shape("hello !world"), ["hello !world"])
        XCTAssertEqual(IRCOutputShaper(triggerGuard: " ").shape("!x"), [" !x"])
    }

    func test_stderr_lines_are_coloured_red_and_stdout_lines_are_not() {
        let out = [OutputChunk(stream: .stdout, text: "out\n"), OutputChunk(stream: .stderr, text: "err\n")]
        XCTAssertEqual(shaper.shape(out), ["out", "\u{03}04err\u{0F}"])
        XCTAssertEqual(IRCOutputShaper(stderrMark: .none).shape(out), ["out", "err"])
        XCTAssertEqual(IRCOutputShaper(stderrMark: .prefix("E: ")).shape(out), ["out", "E: err"])
    }

    func test_the_stderr_colour_cannot_be_extended_by_the_line_it_colours() {
        let digits = shaper.shape([OutputChunk(stream: .stderr, text: "5 errors")])
        XCTAssertEqual(digits, ["\u{03}045 errors\u{0F}"])  // always two digits: colour 04, then text "5"
        let comma = IRCOutputShaper(triggerCharacters: []).shape([OutputChunk(stream: .stderr, text: ",3 x")])
        XCTAssertEqual(comma, ["\u{03}04\u{02}\u{02},3 x\u{0F}"])  // not background colour 3
    }

    func test_a_line_that_switches_stream_mid_line_is_split() {
        let out = [OutputChunk(stream: .stdout, text: "a"), OutputChunk(stream: .stderr, text: "b\n"),
                   OutputChunk(stream: .stdout, text: "c\n")]
        XCTAssertEqual(IRCOutputShaper(stderrMark: .none).shape(out), ["a", "b", "c"])
    }

    func test_the_byte_limit_includes_what_the_shaper_adds() {
        let long = String(repeating: "x", count: 1000)
        let shaped = IRCOutputShaper(maxLineBytes: 100).shape([OutputChunk(stream: .stderr, text: "!" + long)])
        XCTAssertEqual(shaped[0].utf8.count, 100)
        XCTAssertTrue(shaped[0].hasPrefix("\u{03}04\u{200B}!x"))
        XCTAssertTrue(shaped[0].hasSuffix("…\u{0F}"))
    }

    func test_empty_output_becomes_a_short_note() {
        XCTAssertEqual(shaper.shape([]), ["(no output)"])
        XCTAssertEqual(shaper.shape("\n \n\u{0}"), ["(no output)"])
        XCTAssertEqual(shaper.shape("", note: "exit code 1"), ["(no output; exit code 1)"])
    }

    func test_a_note_joins_the_count_and_loses_control_characters() {
        XCTAssertEqual(IRCOutputShaper(maxLines: 1).shape("a\nb\nc", note: "timed out\r\nQUIT"),
                       ["a", "(2 more lines; timed outQUIT)"])
        XCTAssertEqual(shaper.shape("a", note: "exit code 2"), ["a", "(exit code 2)"])
    }
}
