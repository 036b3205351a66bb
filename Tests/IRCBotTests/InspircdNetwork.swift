import CodesandTestSupport
import Foundation
import NIOSSL
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A real IRC network for the tests: Debian's InspIRCd 3 (TLS, IRCv3 CAP, SASL) linked to Anope 2
/// services (the accounts SASL checks), both in the foreground on free loopback ports, with configs,
/// a throwaway CA, a server certificate for localhost and a client certificate made here by openssl
/// (argv, no shell) in a temporary directory that `stop()` removes. `scripts/install-deps` installs
/// them; a missing one fails the test rather than skipping it.
///
/// Ports: `plainPort` and `testerTLSPort` for the watching client (no flood limits), `botPort`
/// (TLS) with a strict flood policy as on real networks: 15 lines of penalty at once, one line a
/// second back, and past that the server disconnects ("Excess Flood"; no fakelag to soften it).
final class InspircdNetwork: @unchecked Sendable {
    static let inspircd = "/usr/sbin/inspircd", anope = "/usr/sbin/anope", openssl = "/usr/bin/openssl"
    let directory: URL
    let plainPort: Int, testerTLSPort: Int, botPort: Int, linkPort: Int
    private let linkPassword = "link-\(UInt64.random(in: 0...UInt64.max))"
    private var ircd: ChildProcess?
    private var services: ChildProcess?

    var caFile: String { path("ca.crt") }
    var clientCertificate: String { path("client.crt") }
    var clientKey: String { path("client.key") }
    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    init() throws {
        for binary in [Self.inspircd, Self.anope, Self.openssl] where !FileManager.default.isExecutableFile(atPath: binary) {
            throw FixtureError("\(binary) is not installed: run scripts/install-deps (inspircd, anope, openssl)")
        }
        plainPort = try freeLoopbackPort()
        testerTLSPort = try freeLoopbackPort()
        botPort = try freeLoopbackPort()
        linkPort = try freeLoopbackPort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("codesand-inspircd-\(getpid())-\(plainPort)")
        for sub in ["anope/db", "anope/logs"] {
            try FileManager.default.createDirectory(at: directory.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        // InspIRCd 3.15 segfaults as it exits on SIGTERM, and raises its core limit up to the hard
        // one first: both 0 (inherited), or each test leaves a core file in the package's directory.
        var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
        setrlimit(Int32(RLIMIT_CORE.rawValue), &noCore)
        do {
            try makeCertificates()
            try writeConfigs()
            try start()
        } catch {
            stop()
            throw error
        }
    }

    /// A CA, a server certificate for localhost and 127.0.0.1, and a client certificate (EC P-256).
    private func makeCertificates() throws {
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try tool(["req", "-x509"] + ec + ["-keyout", path("ca.key"), "-out", path("ca.crt"), "-days", "2",
                  "-subj", "/CN=codesand test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        for (name, usage, san) in [("server", "serverAuth", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"), ("client", "clientAuth", "")] {
            try tool(["req"] + ec + ["-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", "/CN=codesand test \(name)"])
            try "\(san)basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=\(usage)\n"
                .write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
            try tool(["x509", "-req", "-in", path("\(name).csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"),
                      "-CAcreateserial", "-out", path("\(name).crt"), "-days", "2", "-extfile", path("\(name).ext")])
        }
    }

    /// Runs openssl and returns its output; throws with the output if it fails.
    @discardableResult
    private func tool(_ args: [String]) throws -> String {
        let log = path("openssl.out")
        try? FileManager.default.removeItem(atPath: log)
        let child = try ChildProcess([Self.openssl] + args, outputPath: log)
        let status = child.wait(timeout: .seconds(30))
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard status == 0 else { throw FixtureError("openssl \(args.prefix(2).joined(separator: " ")) failed (\(status.map(String.init) ?? "timeout")): \(output)") }
        return output
    }

    private func writeConfigs() throws {
        let d = directory.path
        try "codesand test network\n".write(toFile: path("motd.txt"), atomically: true, encoding: .utf8)
        let ircd = """
            <server name="irc.test" description="codesand test server" network="CodesandTest" id="0AA">
            <admin name="test" nick="test" email="test@localhost">
            <path configdir="\(d)" datadir="\(d)" logdir="\(d)" moduledir="/usr/lib/inspircd/modules" runtimedir="\(d)">
            <pid file="\(d)/inspircd.pid">
            <log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="\(d)/inspircd.log" flush="1">
            <dns server="127.0.0.1" timeout="1">
            <files motd="\(d)/motd.txt">
            <module name="ssl_gnutls">
            <module name="sslinfo">
            <module name="cap">
            <module name="ircv3">
            <module name="ircv3_capnotify">
            <module name="services_account">
            <module name="hidechans">
            <module name="sasl">
            <module name="spanningtree">
            <sslprofile name="tls" provider="gnutls" certfile="\(d)/server.crt" keyfile="\(d)/server.key" dhfile="" hash="sha256" requestclientcert="yes">
            <bind address="127.0.0.1" port="\(plainPort)" type="clients">
            <bind address="127.0.0.1" port="\(testerTLSPort)" type="clients" sslprofile="tls">
            <bind address="127.0.0.1" port="\(botPort)" type="clients" sslprofile="tls">
            <bind address="127.0.0.1" port="\(linkPort)" type="servers">
            <link name="services.test" ipaddr="127.0.0.1" port="\(linkPort)" allowmask="127.0.0.0/8" sendpass="\(linkPassword)" recvpass="\(linkPassword)">
            <uline server="services.test" silent="yes">
            <sasl target="services.test" requiressl="yes">
            <connect name="bot" allow="*" port="\(botPort)" fakelag="no" threshold="15" commandrate="1000" recvq="8K" softsendq="8K" hardsendq="1M" localmax="50" globalmax="50" resolvehostnames="no" useident="no" timeout="20" pingfreq="120">
            <connect name="tester" allow="*" port="\(plainPort),\(testerTLSPort)" fakelag="no" threshold="1000" commandrate="100000" recvq="64K" softsendq="64K" hardsendq="1M" localmax="50" globalmax="50" resolvehostnames="no" useident="no" timeout="20" pingfreq="120">
            """
        try ircd.write(toFile: path("inspircd.conf"), atomically: true, encoding: .utf8)
        let services = """
            serverinfo { name = "services.test"; description = "codesand test services"; pid = "\(d)/anope/anope.pid"; motd = "\(d)/motd.txt" }
            uplink { host = "127.0.0.1"; ipv6 = no; ssl = no; port = \(linkPort); password = "\(linkPassword)" }
            module { name = "inspircd3"; use_server_side_mlock = yes; use_server_side_topiclock = yes }
            networkinfo { networkname = "CodesandTest"; nicklen = 31; userlen = 10; hostlen = 64; chanlen = 32; modelistsize = 100; vhost_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-"; allow_undotted_vhosts = false; disallow_start_or_end = ".-" }
            options { casemap = "rfc1459"; seed = 7262; strictpasswords = no; badpasslimit = 0; updatetimeout = 5m; expiretimeout = 30m; readtimeout = 1s; warningtimeout = 4h; timeoutcheck = 1s; retrywait = 1s }
            mail { usemail = no; sendfrom = "services@localhost" }
            log { target = "services.log"; admin = "*"; commands = "*"; servers = "*"; users = "connect disconnect nick"; other = "*"; rawio = no; debug = no }
            module { name = "enc_sha256" }
            module { name = "db_flatfile"; database = "anope.db"; keepbackups = 0; fork = no }
            service { nick = "NickServ"; user = "services"; host = "services.test"; gecos = "Nickname Registration Service" }
            module { name = "nickserv"; client = "NickServ"; forceemail = no; confirmemailchanges = no; defaults = "ns_secure hide_email hide_mask"; regdelay = 0s; expire = 0 }
            module { name = "ns_register"; registration = "none" }
            module { name = "ns_identify" }
            module { name = "ns_cert"; max = 5 }
            module { name = "m_sasl" }
            command { service = "NickServ"; name = "HELP"; command = "generic/help" }
            command { service = "NickServ"; name = "REGISTER"; command = "nickserv/register" }
            command { service = "NickServ"; name = "IDENTIFY"; command = "nickserv/identify" }
            command { service = "NickServ"; name = "CERT"; command = "nickserv/cert" }
            """
        try services.write(toFile: path("anope/services.conf"), atomically: true, encoding: .utf8)
    }

    /// InspIRCd, then Anope (started once; it relinks by itself after an InspIRCd restart).
    private func start() throws {
        try startIRCd()
        services = try ChildProcess([Self.anope, "--nofork", "--confdir=\(path("anope"))", "--dbdir=\(path("anope/db"))",
                                     "--logdir=\(path("anope/logs"))", "--modulesdir=/usr/lib/anope",
                                     "--localedir=/usr/share/anope/locale"], outputPath: path("anope.out"))
    }

    private func startIRCd() throws {
        ircd = try ChildProcess([Self.inspircd, "--runasroot", "--nofork", "--config", path("inspircd.conf")],
                                outputPath: path("inspircd.out"))
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if tcpConnects(port: plainPort) && tcpConnects(port: botPort) { return }
            guard ircd?.isRunning == true else { break }
            usleep(50_000)
        }
        throw FixtureError("InspIRCd did not listen on \(plainPort):\n\(log("inspircd.out"))\n\(log("inspircd.log"))")
    }

    /// Stops InspIRCd (everyone is disconnected) and starts it again on the same ports.
    func restartIRCd() throws {
        ircd?.stop()
        try startIRCd()
    }

    /// Waits until Anope is linked (LINKS lists services.test): SASL is offered only then.
    func waitForServices(timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        var n = 0
        while ContinuousClock.now < deadline {
            n += 1
            if let probe = try? await IRCTestClient.connect(port: plainPort, nick: "probe\(n)") {
                let start = probe.lines.count
                try? await probe.send("LINKS")
                _ = await probe.waitForLine(from: start, timeout: .seconds(5)) { $0.command == "365" }
                let linked = probe.messages(from: start).contains { $0.command == "364" && $0.middle.contains("services.test") }
                await probe.close()
                if linked { return }
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        throw FixtureError("Anope did not link to InspIRCd:\n\(log("anope.out"))\n\(log("inspircd.log"))")
    }

    /// Registers `account` with NickServ (nick = account), and optionally adds the client
    /// certificate to it for SASL EXTERNAL: NickServ adds the one the connection presents.
    func register(account: String, password: String, addClientCertificate: Bool = false) async throws {
        let c: IRCTestClient
        if addClientCertificate {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(caFile)
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(clientCertificate).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: clientKey, format: .pem))
            c = try await IRCTestClient.connect(port: testerTLSPort, nick: account, tls: try NIOSSLContext(configuration: tls))
        } else {
            c = try await IRCTestClient.connect(port: plainPort, nick: account)
        }
        do {
            try await ask(c, "REGISTER \(password) \(account)@example.invalid", expect: "registered")
            if addClientCertificate { try await ask(c, "CERT ADD", expect: "added") }
        } catch {
            await c.close()
            throw error
        }
        await c.close()
    }

    /// Says `command` to NickServ and waits for its notice containing `expect`.
    private func ask(_ c: IRCTestClient, _ command: String, expect: String) async throws {
        let start = c.lines.count
        try await c.say("NickServ", command)
        guard await c.waitForLine(from: start, timeout: .seconds(10), where: {
            $0.senderNick == "NickServ" && ($0.text ?? "").lowercased().contains(expect)
        }) != nil else { throw FixtureError("NickServ did not answer \(command.split(separator: " ")[0]) with \(expect): \(c.lines.suffix(3))") }
    }

    func log(_ name: String) -> String {
        ((try? String(contentsOfFile: path(name), encoding: .utf8)) ?? "").split(separator: "\n").suffix(15).joined(separator: "\n")
    }

    func stop() {
        ircd?.stop()
        services?.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}
