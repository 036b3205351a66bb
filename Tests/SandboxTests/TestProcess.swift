import CodesandSpawn
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process for tests that start the real daemon (or systemd-socket-activate): argv and
/// environment given exactly, stdout and stderr to files, its own process group so it can be
/// stopped whole.
final class TestProcess {
    let pid: pid_t
    let logPath: String
    private var exitStatus: Int32?

    init(_ argv: [String], environment: [String: String] = [:], log: String) throws {
        logPath = log
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        var spawn = Spawn(argv, environment: env.map { "\($0.key)=\($0.value)" })
        spawn.stdout = .file(log, append: false)
        spawn.stderr = .sameAsStdout
        spawn.newProcessGroup = true
        pid = try spawn.start()
    }

    deinit {
        if exitStatus == nil {
            kill(-pid, SIGKILL)
            _ = wait(timeout: 5)
        }
    }

    func signal(_ sig: Int32) { kill(pid, sig) }

    /// The wait status once it exits, or nil if it is still running after `timeout` seconds.
    func wait(timeout: Double) -> Int32? {
        if let exitStatus { return exitStatus }
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            var st: Int32 = 0
            let r = waitpid(pid, &st, WNOHANG)
            if r == pid { exitStatus = st; return st }
            if r < 0 && errno != EINTR { return nil }
            usleep(10_000)
        }
        return nil
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
}

/// The directory holding the built products (codesandd, codesand) next to the test bundle.
func productsDirectory() -> String {
    // The test runner is .build/<triple>/debug/codesandPackageTests.xctest, beside the products.
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().path
}

/// Waits until `path` is a socket.
/// Waits until a daemon accepts connections on `path` (a socket file alone may be a dead daemon's).
func waitForSocket(_ path: String, timeout: Double = 20) -> Bool {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = b }
        }
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        } == 0
        close(fd)
        if ok { return true }
        usleep(20_000)
    }
    return false
}
