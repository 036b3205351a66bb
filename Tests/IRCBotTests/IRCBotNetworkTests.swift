import CodesandClient
import CodesandIRCBot
import CodesandTestSupport
import Foundation
import XCTest

/// The bot on a network like the ones it lives on: InspIRCd with Anope services, TLS with a test
/// CA, SASL PLAIN and EXTERNAL, a strict flood policy on the bot's port, a server restart. A second
/// user (plain port, no flood limits) watches. As root: a real daemon runs the snippets.
final class IRCBotNetworkTests: XCTestCase {
    static let channelName = "#test"
    var daemon: LiveDaemon!
    var net: InspircdNetwork!
    var tester: IRCTestClient!
    var botTask: Task<Void, any Error>?

    override func setUp() async throws {
        try requireRoot()
        net = try InspircdNetwork()
        try await net.waitForServices()
        daemon = try await LiveDaemon()
        try await connectTester()
    }

    override func tearDown() async throws {
        botTask?.cancel()
        _ = await botTask?.result
        await tester?.close()
        net?.stop()
        await daemon?.shutdown()
    }

    func connectTester() async throws {
        tester = try await IRCTestClient.connect(port: net.plainPort, nick: "tester")
        try await tester.join(Self.channelName)
    }

    /// The bot's config for this network: TLS to the bot's port, trusting the test CA.
    func config(nick: String, sasl: SASLCredentials?) -> BotConfiguration {
        var c = BotConfiguration(host: "localhost", port: net.botPort, tls: true, nick: nick, channels: [Self.channelName],
                                 ratePerMinute: 60, channelRatePerMinute: 60)
        c.tls.caFile = net.caFile
        c.sasl = sasl
        c.reconnectDelay = .seconds(1)
        c.reconnectMaxDelay = .seconds(4)
        return c
    }

    func start(_ config: BotConfiguration) {
        let bot = IRCBot(configuration: config, runner: CodesandRunner(socketPath: daemon.path), logger: botTestLogger)
        botTask = Task { try await bot.run() }
    }

    /// Waits until `nick` is in the channel (in the names list on joining, or joining later).
    func waitForBot(_ nick: String, timeout: Duration = .seconds(30), from start: Int = 0) async -> Bool {
        await tester.waitForLine(from: start, timeout: timeout) { m in
            (m.command == "JOIN" && m.senderNick == nick)
                || (m.command == "353" && (m.text ?? "").split(separator: " ").contains { $0.drop { "@+%~&".contains($0) } == nick })
        } != nil
    }

    func whois(_ nick: String) async throws -> [RawMessage] {
        let start = tester.lines.count
        try await tester.send("WHOIS \(nick)")
        _ = await tester.waitForLine(from: start, timeout: .seconds(10)) { $0.command == "318" }
        return tester.messages(from: start)
    }

    /// Says `text` in the channel; the bot's PRIVMSG texts that arrive within `timeout`, once `count` have.
    func ask(_ text: String, nick: String, count: Int = 1, timeout: Duration = .seconds(30)) async throws -> [String] {
        let start = tester.lines.count
        try await tester.say(Self.channelName, text)
        _ = await tester.waitForLine(from: start, timeout: timeout) { _ in
            self.tester.messages(from: start).filter { $0.senderNick == nick && $0.command == "PRIVMSG" }.count >= count
        }
        return tester.messages(from: start).filter { $0.senderNick == nick && $0.command == "PRIVMSG" }.compactMap(\.text)
    }

    func test_over_tls_with_sasl_plain_the_bot_is_logged_in_and_answers() async throws {
        try await net.register(account: "plainacct", password: "correct-horse")
        start(config(nick: "sandbot", sasl: SASLCredentials(mechanism: .plain, account: "plainacct", password: "correct-horse")))
        let joined = await waitForBot("sandbot")
        XCTAssertTrue(joined, "the bot did not join; inspircd:\n\(net.log("inspircd.log"))")
        let whois = try await whois("sandbot")
        XCTAssertTrue(whois.contains { $0.command == "671" }, "no 671 (secure connection): \(whois)")
        XCTAssertTrue(whois.contains { $0.command == "330" && $0.middle.contains("plainacct") }, "not logged in: \(whois)")
        let answer = try await ask("!py print(6*7)", nick: "sandbot")
        XCTAssertEqual(answer, ["42"])
        // Stopped, it leaves with a QUIT of its own rather than a dropped connection.
        let start = tester.lines.count
        botTask?.cancel()
        _ = await botTask?.result
        let quit = await tester.waitForLine(from: start, timeout: .seconds(10)) { $0.command == "QUIT" && $0.senderNick == "sandbot" }
        XCTAssertTrue(quit?.text?.contains("codesand-ircbot stopping") == true, "\(String(describing: quit))")
    }

    func test_sasl_external_logs_in_with_the_client_certificate() async throws {
        try await net.register(account: "certacct", password: "unused-pw", addClientCertificate: true)
        var c = config(nick: "certbot", sasl: SASLCredentials(mechanism: .external))
        c.tls.clientCertificate = net.clientCertificate
        c.tls.clientKey = net.clientKey
        start(c)
        let joined = await waitForBot("certbot")
        XCTAssertTrue(joined, "the bot did not join")
        let whois = try await whois("certbot")
        XCTAssertTrue(whois.contains { $0.command == "330" && $0.middle.contains("certacct") }, "not logged in: \(whois)")
    }

    func test_a_refused_sasl_login_stops_the_bot_after_one_try() async throws {
        try await net.register(account: "botacct", password: "the-password")
        start(config(nick: "wrongbot", sasl: SASLCredentials(mechanism: .plain, account: "botacct", password: "not-it")))
        let task = botTask!
        let ended = await withTaskGroup(of: Result<Void, any Error>?.self) { group in
            group.addTask { await task.result }
            group.addTask {
                try? await Task.sleep(for: .seconds(15))
                return nil
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
        guard case .failure(let error)? = ended else { return XCTFail("the bot did not stop within 15 s: \(String(describing: ended))") }
        let end = try XCTUnwrap(error as? SessionEnd, "\(error)")
        XCTAssertTrue(end.fatal)
        XCTAssertTrue(end.reason.contains("SASL PLAIN authentication failed for account botacct"), end.reason)
        XCTAssertTrue(end.reason.contains("904"), end.reason)
    }

    func test_a_certificate_the_bot_cannot_verify_is_refused() async throws {
        var c = config(nick: "nocabot", sasl: nil)
        c.tls.caFile = nil  // the system's store, which does not know the test CA
        let bot = IRCBot(configuration: c, runner: CodesandRunner(socketPath: daemon.path), logger: botTestLogger)
        let end = try await bot.runConnection(to: c.servers[0], tls: try IRCConnection.makeTLSContext(c.tls))
        XCTAssertFalse(end.fatal)
        XCTAssertTrue(end.reason.uppercased().contains("CERTIFICATE"), end.reason)
        let whois = try await whois("nocabot")
        XCTAssertTrue(whois.contains { $0.command == "401" }, "the bot got on without a verified certificate: \(whois)")
    }

    func test_after_a_server_restart_the_bot_comes_back_logged_in_and_rejoins() async throws {
        try await net.register(account: "backacct", password: "pw-back")
        start(config(nick: "backbot", sasl: SASLCredentials(mechanism: .plain, account: "backacct", password: "pw-back")))
        let joined = await waitForBot("backbot")
        XCTAssertTrue(joined, "the bot did not join")
        // A run still going when the connection drops belongs to that connection: never answered later.
        try await tester.say(Self.channelName, "!py import time; time.sleep(2); print('late')")
        try await Task.sleep(for: .milliseconds(300))
        await tester.close()
        try net.restartIRCd()
        try await net.waitForServices()
        try await connectTester()
        let back = await waitForBot("backbot", timeout: .seconds(60))
        XCTAssertTrue(back, "the bot did not come back to \(Self.channelName) within 60 s")
        let whois = try await whois("backbot")
        XCTAssertTrue(whois.contains { $0.command == "330" && $0.middle.contains("backacct") }, "not logged in again: \(whois)")
        let answer = try await ask("!py print(1)", nick: "backbot")
        XCTAssertEqual(answer, ["1"])
        XCTAssertFalse(tester.messages().contains { $0.senderNick == "backbot" && $0.text == "late" },
                       "an answer from the old connection was sent on the new one")
    }

    func test_a_server_that_drops_the_bot_before_welcoming_it_is_left_for_the_next() async throws {
        var c = config(nick: "nextbot", sasl: nil)
        // TLS to the plain port: the handshake fails, the bot is never welcomed there.
        c.servers = [IRCServerAddress(host: "localhost", port: net.plainPort, tls: true), c.servers[0]]
        start(c)
        let joined = await waitForBot("nextbot", timeout: .seconds(45))
        XCTAssertTrue(joined, "the bot did not move on to the second server")
    }

    func test_a_burst_of_twenty_triggers_is_answered_without_excess_flood() async throws {
        start(config(nick: "burstbot", sasl: nil))
        let joined = await waitForBot("burstbot")
        XCTAssertTrue(joined, "the bot did not join")
        let start = tester.lines.count
        for _ in 0..<20 { try await tester.say(Self.channelName, "!py print(1)") }
        _ = await tester.waitForLine(from: start, timeout: .seconds(60)) { _ in
            self.tester.messages(from: start).filter { $0.senderNick == "burstbot" && $0.command == "PRIVMSG" }.count >= 20
        }
        let said = tester.messages(from: start).filter { $0.senderNick == "burstbot" }
        XCTAssertEqual(said.filter { $0.command == "PRIVMSG" }.map(\.text), Array(repeating: "1", count: 20))
        XCTAssertFalse(said.contains { $0.command == "QUIT" }, "the server dropped the bot: \(said.filter { $0.command == "QUIT" })")
        let whois = try await whois("burstbot")
        XCTAssertTrue(whois.contains { $0.command == "311" }, "the bot is gone: \(whois)")
    }
}
