import CodesandTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A real IRC server for the tests: Debian's ngircd in the foreground on a free loopback port, with
/// a minimal config in a temporary directory. `scripts/install-deps` installs it; a missing ngircd
/// fails the test rather than skipping it, so CI cannot pass without testing against a server.
final class NgircdServer: @unchecked Sendable {
    static let binary = "/usr/sbin/ngircd"
    let port: Int
    let directory: URL
    private var process: ChildProcess?

    init() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw FixtureError("ngircd is not installed at \(Self.binary): run scripts/install-deps")
        }
        port = try freeLoopbackPort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("codesand-ngircd-\(getpid())-\(port)")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("conf.d"), withIntermediateDirectories: true)
        // ngircd started as root drops to "nobody" before writing its PID file.
        chmod(directory.path, 0o777)
        let config = """
            [Global]
            Name = irc.codesand.test
            Info = codesand test server
            AdminInfo1 = codesand tests
            AdminInfo2 = loopback only
            AdminEMail = nobody@codesand.test
            Listen = 127.0.0.1
            Ports = \(port)
            PidFile = \(directory.path)/ngircd.pid
            MotdPhrase = codesand test server
            [Limits]
            MaxConnectionsIP = 0
            PingTimeout = 120
            [Options]
            DNS = no
            Ident = no
            PAM = no
            IncludeDir = \(directory.path)/conf.d
            """
        let configPath = directory.appendingPathComponent("ngircd.conf")
        try config.write(to: configPath, atomically: true, encoding: .utf8)

        process = try ChildProcess([Self.binary, "--nodaemon", "--config", configPath.path],
                                   outputPath: directory.appendingPathComponent("ngircd.log").path)
        try waitUntilListening()
    }

    /// ngircd's own log, for failure messages.
    var log: String {
        (try? String(contentsOf: directory.appendingPathComponent("ngircd.log"), encoding: .utf8)) ?? ""
    }

    private func waitUntilListening() throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if tcpConnects(port: port) { return }
            guard process?.isRunning == true else { break }
            usleep(20_000)
        }
        let log = self.log
        stop()
        throw FixtureError("ngircd did not listen on port \(port):\n\(log)")
    }

    func stop() {
        process?.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A loopback port nobody listens on now (the kernel picks it; there is a small race until ngircd
/// binds it, which is fine for tests).
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard bound else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EADDRINUSE) }
    return Int(UInt16(bigEndian: addr.sin_port))
}

func tcpConnects(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}
