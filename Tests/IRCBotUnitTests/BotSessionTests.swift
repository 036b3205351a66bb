import CodesandIRCBot
import XCTest

/// The bot's IRC logic without a network: messages in, actions out, the time passed in.
final class BotSessionTests: XCTestCase {
    let t0 = ContinuousClock.now

    func session(rate: Int = 5, channels: [String] = ["#chan"]) -> BotSession {
        var s = BotSession(configuration: BotConfiguration(host: "irc.test", nick: "codesand", channels: channels, ratePerMinute: rate))
        _ = s.start()
        _ = s.handle(IRCMessage(prefix: "irc.test", "001", ["codesand", "Welcome"]), now: t0)
        return s
    }

    func msg(_ line: String) -> IRCMessage { IRCMessage(parsing: line)! }

    func test_registration_asks_for_capabilities_then_sends_nick_then_user() {
        var s = BotSession(configuration: BotConfiguration(host: "irc.test", nick: "bot"))
        XCTAssertEqual(s.start(), [.send(IRCMessage("CAP", ["LS", "302"])), .send(IRCMessage("NICK", ["bot"])),
                                   .send(IRCMessage("USER", ["codesand", "0", "*", "codesand: runs code snippets"]))])
    }

    func test_welcome_joins_each_channel_with_its_own_join() {
        var s = BotSession(configuration: BotConfiguration(host: "irc.test", channels: ["#a", "#b"]))
        _ = s.start()
        XCTAssertEqual(s.handle(msg(":irc.test 001 codesand :Welcome"), now: t0),
                       [.send(IRCMessage("JOIN", ["#a"])), .send(IRCMessage("JOIN", ["#b"]))])
        XCTAssertTrue(s.isRegistered)
    }

    func test_ping_is_answered_with_pong() {
        var s = session()
        XCTAssertEqual(s.handle(msg("PING :irc.test"), now: t0), [.send(IRCMessage("PONG", ["irc.test"]))])
    }

    func test_a_taken_nick_is_replaced_before_registration() {
        var s = BotSession(configuration: BotConfiguration(host: "irc.test", nick: "codesand"))
        _ = s.start()
        XCTAssertEqual(s.handle(msg(":irc.test 433 * codesand :Nickname already in use"), now: t0), [.send(IRCMessage("NICK", ["codesand_"]))])
        XCTAssertEqual(s.handle(msg(":irc.test 433 * codesand_ :Nickname already in use"), now: t0), [.send(IRCMessage("NICK", ["codesand0"]))])
        XCTAssertEqual(s.nick, "codesand0")
    }

    func test_a_trigger_in_a_channel_runs_and_answers_in_the_channel() {
        var s = session()
        XCTAssertEqual(s.handle(msg(":alice!a@host PRIVMSG #chan :!py print(1)"), now: t0),
                       [.run(SnippetRequest(nick: "alice", replyTarget: "#chan", language: "python3", code: "print(1)"))])
    }

    func test_a_trigger_in_a_private_message_answers_the_sender() {
        var s = session()
        XCTAssertEqual(s.handle(msg(":alice!a@host PRIVMSG codesand :!sh echo hi"), now: t0),
                       [.run(SnippetRequest(nick: "alice", replyTarget: "alice", language: "sh", code: "echo hi"))])
    }

    func test_chatter_ctcp_and_the_bots_own_messages_run_nothing() {
        var s = session()
        for line in [":alice!a@h PRIVMSG #chan :hello !py print(1)", ":alice!a@h PRIVMSG #chan :!py",
                     ":alice!a@h PRIVMSG #chan :\u{01}ACTION !py print(1)\u{01}", ":codesand!c@h PRIVMSG #chan :!py print(1)",
                     ":alice!a@h NOTICE #chan :!py print(1)"] {
            XCTAssertEqual(s.handle(msg(line), now: t0), [], line)
        }
    }

    func test_nothing_runs_before_registration() {
        var s = BotSession(configuration: BotConfiguration(host: "irc.test"))
        _ = s.start()
        XCTAssertEqual(s.handle(msg(":alice!a@h PRIVMSG #chan :!py print(1)"), now: t0), [])
    }

    func test_a_nick_over_its_rate_gets_one_notice_then_silence_then_a_token_again() {
        var s = session(rate: 2)
        let ask = msg(":Alice!a@h PRIVMSG #chan :!py 1")
        XCTAssertEqual(s.handle(ask, now: t0).count, 1)
        XCTAssertEqual(s.handle(msg(":alice!a@h PRIVMSG #chan :!py 1"), now: t0).count, 1)  // same nick, other case
        guard case .send(let notice)? = s.handle(ask, now: t0).first else { return XCTFail("no notice") }
        XCTAssertEqual(notice.command, "NOTICE")
        XCTAssertEqual(notice.params.first, "Alice")
        XCTAssertEqual(s.handle(ask, now: t0 + .seconds(5)), [])
        // Two a minute: one token every 30 s.
        guard case .run? = s.handle(ask, now: t0 + .seconds(30)).first else { return XCTFail("no token after 30 s") }
        XCTAssertEqual(s.handle(msg(":bob!b@h PRIVMSG #chan :!py 1"), now: t0 + .seconds(30)).count, 1)  // others unaffected
    }

    func test_a_rate_of_zero_means_no_limit() {
        var s = session(rate: 0)
        for _ in 0..<50 { XCTAssertEqual(s.handle(msg(":a!a@h PRIVMSG #chan :!py 1"), now: t0).count, 1) }
    }

    func test_the_bots_nick_follows_a_nick_change() {
        var s = session()
        _ = s.handle(msg(":codesand!c@h NICK :sandbot"), now: t0)
        XCTAssertEqual(s.nick, "sandbot")
        XCTAssertEqual(s.formatter.botNick, "sandbot")
    }
}
