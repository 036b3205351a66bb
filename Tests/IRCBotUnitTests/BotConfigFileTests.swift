import CodesandIRCBot
import Foundation
import XCTest

/// The config file: the printed defaults read back as the defaults; each bad value names its key.
final class BotConfigFileTests: XCTestCase {
    func parse(_ text: String) throws -> BotConfigFile { try BotConfigFile.parse(text) }

    func problem(_ text: String) -> String {
        do {
            _ = try BotConfigFile.parse(text)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    func test_the_default_config_reads_back_as_the_built_in_defaults() throws {
        let file = try parse(BotConfigFile.defaultText)
        let c = file.configuration, d = BotConfiguration(host: "x")
        XCTAssertEqual(c.servers, [IRCServerAddress(host: "irc.example.net", port: 6697, tls: true)])
        XCTAssertEqual(c.nick, d.nick)
        XCTAssertEqual(c.username, d.username)
        XCTAssertEqual(c.realname, d.realname)
        XCTAssertEqual(c.channels, ["#codesand"])
        XCTAssertEqual(c.triggers, TriggerMap.defaults)
        XCTAssertEqual(c.tls, TLSSettings())
        XCTAssertNil(c.sasl)
        XCTAssertEqual(c.ratePerMinute, d.ratePerMinute)
        XCTAssertEqual(c.channelRatePerMinute, 20)  // the file's default; the library's is no channel limit
        XCTAssertEqual(c.shaper.maxLines, d.shaper.maxLines)
        XCTAssertEqual(c.shaper.maxLineBytes, d.shaper.maxLineBytes)
        XCTAssertEqual(c.sendBurst, d.sendBurst)
        XCTAssertEqual(c.sendInterval, d.sendInterval)
        XCTAssertEqual(c.replyTimeout, d.replyTimeout)
        XCTAssertEqual([c.pingInterval, c.pingTimeout, c.regainNickInterval, c.reconnectDelay, c.reconnectMaxDelay],
                       [d.pingInterval, d.pingTimeout, d.regainNickInterval, d.reconnectDelay, d.reconnectMaxDelay])
        XCTAssertEqual(file.socket, "/run/codesand/codesand.sock")
        XCTAssertEqual(file.logLevel, "info")
    }

    func test_a_tls_and_sasl_network() throws {
        let file = try parse("""
            nick = "sandbot"
            channels = ["#a", "#b"]
            [[servers]]
            host = "irc.one.test"
            [[servers]]
            host = "irc.two.test"
            port = 6667
            tls = false
            [tls]
            ca_file = "/etc/ca.pem"
            [sasl]
            mechanism = "plain"
            account = "sandbot"
            password_file = "/run/secret"
            [send_queue]
            burst_lines = 3
            lines_per_second = 0.5
            """)
        XCTAssertEqual(file.configuration.servers, [IRCServerAddress(host: "irc.one.test", port: 6697, tls: true),
                                                    IRCServerAddress(host: "irc.two.test", port: 6667, tls: false)])
        XCTAssertEqual(file.configuration.tls.caFile, "/etc/ca.pem")
        XCTAssertEqual(file.configuration.sasl, SASLCredentials(mechanism: .plain, account: "sandbot"))
        XCTAssertEqual(file.saslPasswordFile, "/run/secret")
        XCTAssertEqual(file.configuration.sendBurst, 3)
        XCTAssertEqual(file.configuration.sendInterval, .seconds(2))
        // PLAIN over the plain server would give the password away.
        XCTAssertThrowsError(try file.configuration.validate()) { XCTAssertTrue("\($0)".hasPrefix("servers[1].tls:"), "\($0)") }
    }

    func test_each_bad_value_names_its_key() {
        XCTAssertTrue(problem("[[servers]]\nhost = \"a\"\nport = \"many\"").hasPrefix("servers[0].port: must be an integer, got a string"))
        XCTAssertTrue(problem("[[servers]]\nhost = \"a\"\nport = 70000").hasPrefix("servers[0].port: must be 1…65535"))
        XCTAssertTrue(problem("[[servers]]\nhost = \"a\"\n[limits]\nrun_per_nick = 3").hasPrefix("limits.run_per_nick: unknown key"))
        XCTAssertTrue(problem("[[servers]]\nhost = \"a\"\n[sasl]\nmechanism = \"scram\"").hasPrefix("sasl.mechanism:"))
        XCTAssertTrue(problem("channels = [\"#a\"]").hasPrefix("servers:"))
        XCTAssertTrue(problem("channels = [1]\n[[servers]]\nhost = \"a\"").hasPrefix("channels[0]: must be a string"))
        XCTAssertTrue(problem("[[servers]]\nhost = \"a\"\nchannels = [\"#a\"]").hasPrefix("servers[0].channels: unknown key"))
        XCTAssertTrue(problem("nick = ").contains("TOML syntax error at line 1"))
    }

    func test_the_sasl_password_comes_from_its_file_or_else_the_environment() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ircbot-config-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let secret = dir.appendingPathComponent("pw").path
        try "hunter2\n".write(toFile: secret, atomically: true, encoding: .utf8)
        let base = "[[servers]]\nhost = \"a\"\n[sasl]\nmechanism = \"plain\"\naccount = \"bot\"\n"

        var fromFile = try parse(base + "password_file = \"\(secret)\"")
        try fromFile.loadSecrets(environment: [BotConfigFile.saslPasswordVariable: "not this"])
        XCTAssertEqual(fromFile.configuration.sasl?.password, "hunter2")

        var fromEnvironment = try parse(base)
        try fromEnvironment.loadSecrets(environment: [BotConfigFile.saslPasswordVariable: "s3cret"])
        XCTAssertEqual(fromEnvironment.configuration.sasl?.password, "s3cret")

        var neither = try parse(base)
        XCTAssertThrowsError(try neither.loadSecrets(environment: [:])) { XCTAssertTrue("\($0)".hasPrefix("sasl.password_file:")) }
        var missing = try parse(base + "password_file = \"\(dir.path)/nope\"")
        XCTAssertThrowsError(try missing.loadSecrets(environment: [:])) { XCTAssertTrue("\($0)".contains("cannot read")) }
    }

    func test_external_needs_a_client_certificate() throws {
        let file = try parse("[[servers]]\nhost = \"a\"\n[sasl]\nmechanism = \"external\"")
        XCTAssertThrowsError(try file.configuration.validate()) { XCTAssertTrue("\($0)".hasPrefix("tls.client_cert:")) }
    }
}
