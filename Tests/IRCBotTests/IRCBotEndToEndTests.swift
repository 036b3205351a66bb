import CodesandClient
import CodesandIRCBot
import CodesandTestSupport
import Foundation
import XCTest

/// The example bot against a real IRC server (ngircd) and a real daemon, watched by a second IRC
/// user. As root: the daemon builds real sandboxes.
final class IRCBotEndToEndTests: XCTestCase {
    static let channelName = "#chan"
    static let botNick = "codesand"
    var daemon: LiveDaemon!
    var irc: NgircdServer!
    var tester: IRCTestClient!
    var botTask: Task<Void, any Error>?

    override func setUp() async throws {
        try requireRoot()
        daemon = try await LiveDaemon()
        irc = try NgircdServer()
        tester = try await IRCTestClient.connect(port: irc.port, nick: "tester")
        try await tester.join(Self.channelName)
    }

    override func tearDown() async throws {
        botTask?.cancel()
        _ = await botTask?.result
        await tester?.close()
        irc?.stop()
        await daemon?.shutdown()
    }

    /// Starts the bot and waits until it is in the channel.
    func startBot(ratePerMinute: Int = 30, maxLines: Int = 10) async throws {
        // Two lines a second after the burst (the default is one, for stricter servers): ngircd allows
        // it, and an 11-line answer then arrives within the tests' 6-second window.
        let config = BotConfiguration(host: "127.0.0.1", port: irc.port, nick: Self.botNick, channels: [Self.channelName],
                                      shaper: IRCOutputShaper(maxLines: maxLines), ratePerMinute: ratePerMinute,
                                      sendInterval: .milliseconds(500))
        let bot = IRCBot(configuration: config, runner: CodesandRunner(socketPath: daemon.path), logger: botTestLogger)
        botTask = Task { try await bot.run() }
        let joined = await tester.waitForLine(timeout: .seconds(10)) {
            $0.command == "JOIN" && $0.senderNick == Self.botNick
        }
        XCTAssertNotNil(joined, "the bot did not join \(Self.channelName); ngircd log:\n\(irc.log)")
    }

    /// Says `text` in the channel and returns what the bot says there within `window` once its first
    /// line arrived (or nothing after 30 s).
    func ask(_ text: String, window: Duration = .seconds(2)) async throws -> [RawMessage] {
        let start = tester.lines.count
        try await tester.say(Self.channelName, text)
        guard await tester.waitForLine(from: start, timeout: .seconds(30), where: { $0.senderNick == Self.botNick }) != nil else {
            XCTFail("no answer from the bot to \(text)")
            return []
        }
        return await tester.collect(from: start, for: window).filter { $0.senderNick == Self.botNick }
    }

    func test_py_print_1_is_answered_with_1_in_the_channel() async throws {
        try await startBot()
        let replies = try await ask("!py print(1)")
        XCTAssertEqual(replies.map(\.command), ["PRIVMSG"])
        XCTAssertEqual(replies.first?.middle, [Self.channelName])
        XCTAssertEqual(replies.first?.text, "1")
    }

    func test_output_with_crlf_cannot_inject_a_raw_irc_line() async throws {
        try await startBot()
        let replies = try await ask(#"!py print("hi\r\nPRIVMSG #chan :owned")"#)
        // Each thing the bot said is one PRIVMSG to the channel, carrying the program's text as text.
        for reply in replies {
            XCTAssertEqual(reply.command, "PRIVMSG", reply.raw)
            XCTAssertEqual(reply.middle, [Self.channelName], reply.raw)
        }
        XCTAssertEqual(replies.map(\.text), ["hi", "PRIVMSG #chan :owned"])
        // An injected command would have arrived as its own PRIVMSG whose text is just "owned".
        XCTAssertFalse(tester.messages().contains { $0.command == "PRIVMSG" && $0.text == "owned" })
        // And nothing the server sent us has a stray CR or NUL inside a line.
        XCTAssertFalse(tester.lines.contains { $0.contains("\r") || $0.contains("\0") })
    }

    func test_twenty_lines_of_output_arrive_as_the_line_limit_plus_a_note() async throws {
        try await startBot(maxLines: 10)
        let replies = try await ask("!py for i in range(20): print(i)", window: .seconds(6))
        XCTAssertEqual(replies.count, 11)
        XCTAssertEqual(replies.prefix(10).map(\.text), (0..<10).map { "\($0)" })
        XCTAssertEqual(replies.last?.text, "(10 more lines)")
    }

    func test_a_failing_program_says_how_it_ended_and_stderr_is_coloured() async throws {
        try await startBot()
        let replies = try await ask("!py import sys; print('out'); sys.exit('bad')")
        XCTAssertEqual(replies.map(\.text), ["out", "\u{03}04bad\u{0F}", "(exit code 1)"])
    }

    func test_a_trigger_in_the_output_cannot_command_another_bot() async throws {
        try await startBot()
        let replies = try await ask("!py print('!py print(666)')")
        XCTAssertEqual(replies.map(\.text), ["\u{200B}!py print(666)"])
    }

    func test_a_nick_over_its_rate_is_told_once_then_ignored() async throws {
        try await startBot(ratePerMinute: 1)
        let first = try await ask("!py print('first')")
        XCTAssertEqual(first.map(\.text), ["first"])
        let start = tester.lines.count
        try await tester.say(Self.channelName, "!py print('second')")
        try await tester.say(Self.channelName, "!py print('third')")
        let later = await tester.collect(from: start, for: .seconds(3)).filter { $0.senderNick == Self.botNick }
        XCTAssertEqual(later.map(\.command), ["NOTICE"])
        XCTAssertEqual(later.first?.middle, ["tester"])
    }

    func test_every_line_the_bot_sends_fits_in_512_bytes() async throws {
        try await startBot()
        // Multi-byte output longer than a line: the bot must cut it, never let the server cut it.
        let replies = try await ask("!py print('é' * 1000); print('x' * 1000)")
        XCTAssertEqual(replies.count, 2)
        for reply in replies {
            XCTAssertLessThanOrEqual(reply.raw.utf8.count + 2, 512)
            XCTAssertTrue(reply.text?.hasSuffix("…") == true, reply.raw)
            XCTAssertFalse(reply.raw.contains("\u{FFFD}"), "a character was split")
        }
    }
}
