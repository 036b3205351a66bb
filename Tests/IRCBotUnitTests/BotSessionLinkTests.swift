import CodesandIRCBot
import XCTest

/// The session's upkeep of a connection: its own PINGs, a dead link, the nick taken back, SASL.
final class BotSessionLinkTests: XCTestCase {
    let t0 = ContinuousClock.now
    func msg(_ line: String) -> IRCMessage { IRCMessage(parsing: line)! }

    func registered(nick: String = "bot", sasl: SASLCredentials? = nil) -> BotSession {
        var c = BotConfiguration(host: "irc.test", nick: "bot", channels: ["#c"])
        c.sasl = sasl
        c.pingInterval = .seconds(90)
        c.pingTimeout = .seconds(60)
        c.regainNickInterval = .seconds(30)
        var s = BotSession(configuration: c, now: t0)
        _ = s.start()
        _ = s.handle(msg(":irc.test CAP * LS :multi-prefix"), now: t0)
        _ = s.handle(msg(":irc.test 001 \(nick) :Welcome"), now: t0)
        return s
    }

    func test_a_quiet_link_gets_a_ping_and_then_is_given_up() {
        var s = registered()
        XCTAssertEqual(s.tick(now: t0 + .seconds(89)), [])
        XCTAssertEqual(s.tick(now: t0 + .seconds(90)), [.send(IRCMessage("PING", ["codesand"]))])
        XCTAssertEqual(s.tick(now: t0 + .seconds(100)), [])  // one PING at a time
        guard case .stop(let end)? = s.tick(now: t0 + .seconds(150)).first else { return XCTFail("not given up") }
        XCTAssertFalse(end.fatal)
    }

    func test_a_server_that_never_welcomes_the_bot_is_given_up() {
        var c = BotConfiguration(host: "irc.test", nick: "bot")
        c.pingTimeout = .seconds(60)
        var s = BotSession(configuration: c, now: t0)
        _ = s.start()
        _ = s.handle(msg(":irc.test NOTICE * :*** Looking up your hostname..."), now: t0 + .seconds(30))
        XCTAssertEqual(s.tick(now: t0 + .seconds(59)), [])
        guard case .stop(let end)? = s.tick(now: t0 + .seconds(60)).first else { return XCTFail("not given up") }
        XCTAssertFalse(end.fatal)
        var welcomed = registered()
        XCTAssertEqual(welcomed.tick(now: t0 + .seconds(61)), [])  // once welcomed, only the PING rule
    }

    func test_any_line_shows_the_link_is_alive() {
        var s = registered()
        _ = s.tick(now: t0 + .seconds(90))
        _ = s.handle(msg(":irc.test PONG irc.test :codesand"), now: t0 + .seconds(91))
        XCTAssertEqual(s.tick(now: t0 + .seconds(160)), [])
        XCTAssertEqual(s.tick(now: t0 + .seconds(181)), [.send(IRCMessage("PING", ["codesand"]))])
    }

    func test_the_configured_nick_is_taken_back_when_its_holder_leaves_and_tried_now_and_then() {
        var s = registered(nick: "bot_")
        XCTAssertEqual(s.nick, "bot_")
        XCTAssertEqual(s.handle(msg(":bot!x@h QUIT :bye"), now: t0 + .seconds(1)), [.send(IRCMessage("NICK", ["bot"]))])
        XCTAssertEqual(s.handle(msg(":irc.test 433 bot_ bot :Nickname is already in use"), now: t0 + .seconds(1)), [])
        XCTAssertEqual(s.nick, "bot_")  // a failed attempt keeps the nick we have
        XCTAssertEqual(s.tick(now: t0 + .seconds(20)), [])
        XCTAssertEqual(s.tick(now: t0 + .seconds(31)), [.send(IRCMessage("NICK", ["bot"]))])
        _ = s.handle(msg(":bot_!b@h NICK :bot"), now: t0 + .seconds(32))
        XCTAssertEqual(s.nick, "bot")
        XCTAssertEqual(s.tick(now: t0 + .seconds(100)), [])
    }

    func test_sasl_runs_inside_registration_and_a_refusal_stops_the_bot() {
        var c = BotConfiguration(host: "irc.test", nick: "bot")
        c.sasl = SASLCredentials(mechanism: .plain, account: "acct", password: "pw")
        var s = BotSession(configuration: c, now: t0)
        XCTAssertEqual(s.start().first, .send(IRCMessage("CAP", ["LS", "302"])))
        XCTAssertEqual(s.handle(msg(":irc.test CAP * LS :sasl=PLAIN"), now: t0), [.send(IRCMessage("CAP", ["REQ", "sasl"]))])
        XCTAssertEqual(s.handle(msg(":irc.test CAP bot ACK :sasl"), now: t0), [.send(IRCMessage("AUTHENTICATE", ["PLAIN"]))])
        XCTAssertEqual(s.handle(msg("AUTHENTICATE +"), now: t0).count, 1)
        guard case .stop(let end)? = s.handle(msg(":irc.test 904 bot :SASL authentication failed"), now: t0).first else {
            return XCTFail("no stop")
        }
        XCTAssertTrue(end.fatal)
        XCTAssertFalse(s.isLoggedIn)
    }

    func test_a_kick_is_answered_with_a_join_and_an_error_line_ends_the_connection() {
        var s = registered()
        XCTAssertEqual(s.handle(msg(":op!o@h KICK #c bot :out"), now: t0), [.send(IRCMessage("JOIN", ["#c"]))])
        XCTAssertEqual(s.handle(msg(":op!o@h KICK #c alice :out"), now: t0), [])
        guard case .stop(let end)? = s.handle(msg("ERROR :Closing link: (Excess Flood)"), now: t0).first else { return XCTFail() }
        XCTAssertFalse(end.fatal)
    }

    func test_a_channel_over_its_rate_is_told_once() {
        var c = BotConfiguration(host: "irc.test", nick: "bot", ratePerMinute: 0, channelRatePerMinute: 2)
        c.channels = ["#c"]
        var s = BotSession(configuration: c, now: t0)
        _ = s.start()
        _ = s.handle(msg(":irc.test 001 bot :hi"), now: t0)
        let ask = { (nick: String) in self.msg(":\(nick)!u@h PRIVMSG #c :!py 1") }
        XCTAssertEqual(s.handle(ask("a"), now: t0).count, 1)
        XCTAssertEqual(s.handle(ask("b"), now: t0).count, 1)
        guard case .send(let notice)? = s.handle(ask("c"), now: t0).first else { return XCTFail() }
        XCTAssertEqual(notice.command, "NOTICE")
        XCTAssertEqual(s.handle(ask("d"), now: t0), [])
        // Private messages are not a channel's.
        XCTAssertEqual(s.handle(msg(":e!u@h PRIVMSG bot :!py 1"), now: t0).count, 1)
    }
}
