import CodesandTestSupport
import Foundation
import XCTest

/// The `codesand-ircbot` program as an admin runs it: from its TOML config file, against the
/// InspIRCd + Anope network over TLS with SASL PLAIN, the password in a file. As root (the daemon).
final class IRCBotExecutableTests: XCTestCase {
    var daemon: LiveDaemon!
    var net: InspircdNetwork!
    var tester: IRCTestClient!
    var bot: ChildProcess?

    override func setUp() async throws {
        try requireRoot()
        net = try InspircdNetwork()
        try await net.waitForServices()
        daemon = try await LiveDaemon()
        tester = try await IRCTestClient.connect(port: net.plainPort, nick: "tester")
        try await tester.join("#exe")
    }

    override func tearDown() async throws {
        bot?.stop()
        await tester?.close()
        net?.stop()
        await daemon?.shutdown()
    }

    /// The built program, next to the test bundle (.build/<triple>/debug/).
    var program: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("codesand-ircbot").path
    }

    /// Runs the program to its end; its exit status and output.
    func runToEnd(_ args: [String]) throws -> (Int32?, String) {
        let out = net.path("run-\(UInt32.random(in: 0...UInt32.max)).out")
        let child = try ChildProcess([program] + args, outputPath: out)
        let status = child.wait(timeout: .seconds(30))
        if status == nil { child.stop() }
        return (status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
    }

    func test_started_from_its_config_file_it_logs_in_over_tls_and_answers() async throws {
        try await net.register(account: "exeacct", password: "exe-secret")
        let passwordFile = net.path("sasl-password")
        try "exe-secret\n".write(toFile: passwordFile, atomically: true, encoding: .utf8)
        let config = """
            nick = "exebot"
            channels = ["#exe"]
            [[servers]]
            host = "localhost"
            port = \(net.botPort)
            tls = true
            [tls]
            ca_file = "\(net.caFile)"
            [sasl]
            mechanism = "plain"
            account = "exeacct"
            password_file = "\(passwordFile)"
            [codesand]
            socket = "\(daemon.path)"
            """
        let configFile = net.path("ircbot.toml")
        try config.write(toFile: configFile, atomically: true, encoding: .utf8)

        let (ok, okOutput) = try runToEnd(["--check-config", "--config", configFile])
        XCTAssertEqual(ok, 0, okOutput)
        try config.replacingOccurrences(of: "port = \(net.botPort)", with: "port = \"many\"")
            .write(toFile: net.path("broken.toml"), atomically: true, encoding: .utf8)
        let (broken, brokenOutput) = try runToEnd(["--check-config", "--config", net.path("broken.toml")])
        XCTAssertEqual(broken, 78)
        XCTAssertTrue(brokenOutput.contains("servers[0].port: must be an integer, got a string"), brokenOutput)
        let (printed, defaults) = try runToEnd(["--print-default-config"])
        XCTAssertEqual(printed, 0)
        XCTAssertTrue(defaults.contains("[[servers]]") && defaults.contains("[sasl]"), defaults)

        let log = net.path("bot.log")
        bot = try ChildProcess([program, "--config", configFile], outputPath: log)
        let joined = await tester.waitForLine(timeout: .seconds(30)) { $0.command == "JOIN" && $0.senderNick == "exebot" }
        XCTAssertNotNil(joined, "the bot did not join; its log:\n\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        let start = tester.lines.count
        try await tester.send("WHOIS exebot")
        _ = await tester.waitForLine(from: start, timeout: .seconds(10)) { $0.command == "318" }
        XCTAssertTrue(tester.messages(from: start).contains { $0.command == "330" && $0.middle.contains("exeacct") })
        let asked = tester.lines.count
        try await tester.say("#exe", "!py print(1)")
        let answer = await tester.waitForLine(from: asked, timeout: .seconds(30)) { $0.senderNick == "exebot" && $0.command == "PRIVMSG" }
        XCTAssertEqual(answer?.text, "1")

        // systemd's stop: SIGTERM, and the bot says goodbye and exits 0.
        let stopped = tester.lines.count
        kill(bot!.pid, SIGTERM)
        XCTAssertEqual(bot!.wait(timeout: .seconds(10)), 0)
        let quit = await tester.waitForLine(from: stopped, timeout: .seconds(10)) { $0.command == "QUIT" && $0.senderNick == "exebot" }
        XCTAssertTrue(quit?.text?.contains("codesand-ircbot stopping") == true, "\(String(describing: quit))")
    }
}
