import CodesandClient
import CodesandIRCBot
import CodesandProtocol
import XCTest

/// IRC lines in and out, the trigger map, and the replies' size.
final class IRCMessageTests: XCTestCase {
    func test_a_line_parses_into_prefix_command_and_params() {
        let m = IRCMessage(parsing: "@time=x :alice!a@host privmsg #chan :hello :world ")
        XCTAssertEqual(m?.prefix, "alice!a@host")
        XCTAssertEqual(m?.nick, "alice")
        XCTAssertEqual(m?.command, "PRIVMSG")
        XCTAssertEqual(m?.params, ["#chan", "hello :world "])
        XCTAssertEqual(IRCMessage(parsing: "PING  irc.test")?.params, ["irc.test"])
        XCTAssertNil(IRCMessage(parsing: ":prefix-only"))
    }

    func test_encoding_refuses_cr_lf_and_nul_in_any_parameter() {
        for bad in ["a\rb", "a\nPRIVMSG #x :owned", "a\u{0}b"] {
            XCTAssertThrowsError(try IRCMessage.privmsg("#chan", bad).encoded()) {
                XCTAssertEqual($0 as? IRCMessage.EncodingError, .forbiddenCharacter(parameter: 1))
            }
        }
        XCTAssertThrowsError(try IRCMessage.privmsg("#chan\r\nQUIT", "x").encoded())
    }

    func test_encoding_refuses_lines_over_512_bytes_with_crlf() throws {
        let head = "PRIVMSG #c :"
        let fits = String(repeating: "x", count: 510 - head.utf8.count)
        XCTAssertEqual(try IRCMessage.privmsg("#c", fits).encoded().utf8.count, 512)
        XCTAssertThrowsError(try IRCMessage.privmsg("#c", fits + "x").encoded()) {
            XCTAssertEqual($0 as? IRCMessage.EncodingError, .tooLong(bytes: 513))
        }
    }

    func test_encoding_refuses_a_middle_parameter_that_would_shift_the_others() {
        XCTAssertThrowsError(try IRCMessage("PRIVMSG", ["#a #b", "x"]).encoded())
        XCTAssertThrowsError(try IRCMessage("PRIVMSG", [":#a", "x"]).encoded())
        XCTAssertEqual(try IRCMessage.privmsg("#a", ":) hi").encoded(), "PRIVMSG #a ::) hi\r\n")
    }

    func test_trigger_specs_parse_and_bad_ones_are_named() throws {
        let map = try TriggerMap(specs: ["!py=python3", "!P=php"])
        XCTAssertEqual(map.languages, ["!py": "python3", "!p": "php"])
        XCTAssertThrowsError(try TriggerMap(specs: ["!py"]))
        XCTAssertThrowsError(try TriggerMap(specs: ["! py=python3"]))
        XCTAssertEqual(try TriggerMap.defaults(plus: ["!py=pypy"]).languages["!py"], "pypy")
        XCTAssertEqual(TriggerMap.defaults.languages["!bash"], "bash")
    }

    func test_a_trigger_matches_only_as_the_first_word_with_code_after_it() {
        let map = TriggerMap.defaults
        XCTAssertEqual(map.match("!PY   print(1) ")?.code, "print(1) ")
        XCTAssertEqual(map.match("!py print(1)")?.language, "python3")
        XCTAssertNil(map.match("!pyx print(1)"))
        XCTAssertNil(map.match("!py"))
        XCTAssertNil(map.match(" !py print(1)"))
    }

    func test_every_reply_line_fits_in_512_bytes_even_relayed_with_long_names() throws {
        let nick = String(repeating: "n", count: 30), channel = "#" + String(repeating: "c", count: 49)
        let formatter = ReplyFormatter(shaper: IRCOutputShaper(maxLineBytes: 400), botNick: nick)
        let output = [OutputChunk(stream: .stderr, text: String(repeating: "é🦆", count: 500) + "\n"),
                      OutputChunk(stream: .stdout, text: (1...30).map { String(repeating: "\($0)", count: 300) }.joined(separator: "\n"))]
        let request = SnippetRequest(nick: "alice", replyTarget: channel, language: "python3", code: "")
        let replies = formatter.replies(to: .success(result(output: output, status: .error, exitCode: 1)), for: request)
        XCTAssertEqual(replies.count, 11)
        XCTAssertEqual(replies.last?.params.last, "(21 more lines; exit code 1)")
        for reply in replies {
            let line = try reply.encoded()
            // What the server relays: ":nick!user@host " (user ≤ 20, host ≤ 63 bytes) and our line.
            let relayed = ":\(nick)!\(String(repeating: "u", count: 20))@\(String(repeating: "h", count: 63)) " + line
            XCTAssertLessThanOrEqual(relayed.utf8.count, 512)
        }
    }

    func test_a_request_that_got_no_result_is_answered_in_one_line() {
        let formatter = ReplyFormatter(shaper: IRCOutputShaper(), botNick: "codesand")
        let request = SnippetRequest(nick: "alice", replyTarget: "#chan", language: "cobol", code: "x")
        let unknown = RPCError(.unknownLanguage, "unknown language", data: .object(["known": .array([.string("bash"), .string("python3")])]))
        XCTAssertEqual(formatter.replies(to: .failure(.rpc(unknown)), for: request).map { $0.params[1] },
                       ["alice: cobol is not installed here (have: bash, python3)"])
        XCTAssertEqual(formatter.replies(to: .failure(.connectFailed(path: "/x", reason: "No such file")), for: request).map { $0.params[1] },
                       ["alice: codesand is not available right now"])
    }

    func test_a_compile_error_shows_the_compilers_output_not_the_programs() {
        let formatter = ReplyFormatter(shaper: IRCOutputShaper(stderrMark: .none), botNick: "codesand")
        var r = result(output: [], status: .compileError, exitCode: nil)
        r.compile = result(output: [OutputChunk(stream: .stderr, text: "main.c:1: error: expected ';'\n")], status: .error, exitCode: 1)
        let request = SnippetRequest(nick: "alice", replyTarget: "#chan", language: "c", code: "x")
        XCTAssertEqual(formatter.replies(to: .success(r), for: request).map { $0.params[1] },
                       ["main.c:1: error: expected ';'", "(compile error)"])
    }

    func test_output_cut_at_the_limit_is_told_even_when_the_program_ended_first() {
        let formatter = ReplyFormatter(shaper: IRCOutputShaper(stderrMark: .none), botNick: "codesand")
        let request = SnippetRequest(nick: "alice", replyTarget: "#chan", language: "python3", code: "x")
        let lines = [OutputChunk(stream: .stdout, text: "0\n1\n")]
        for (status, exitCode, note) in [(RunStatus.ok, Int32(0), "(too much output; cut)"),
                                         (.error, 1, "(exit code 1; too much output, cut)")] {
            var r = result(output: lines, status: status, exitCode: exitCode)
            r.truncated = true
            XCTAssertEqual(formatter.replies(to: .success(r), for: request).map { $0.params[1] }, ["0", "1", note])
            r.truncated = false
            XCTAssertEqual(formatter.replies(to: .success(r), for: request).map { $0.params[1] }.count, status == .ok ? 2 : 3)
        }
    }

    private func result(output: [OutputChunk], status: RunStatus, exitCode: Int32?) -> RunResult {
        RunResult(status: status, exitCode: exitCode, signal: nil, timedOut: false, oomKilled: false, truncated: false,
                  stdout: "", stderr: "", output: output, wallMs: 10, cpuMs: 10, memoryPeakBytes: 0)
    }
}

private extension ReplyFormatter {
    func replies(to outcome: Result<RunResult, CodesandClientError>, for request: SnippetRequest) -> [IRCMessage] {
        replies(to: request, outcome: outcome)
    }
}
