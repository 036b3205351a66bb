import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A program the tests start (ngircd, make), with a fixed argv and never a shell.
///
/// Not Foundation's `Process`: a child inherits the spawning thread's signal mask, and threads in
/// this test process block SIGTERM, so an ngircd started that way ignores `terminate()` and the
/// test hangs waiting for it. Here the child starts with an empty mask and default handlers.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private var status: Int32?

    /// Starts `argv[0]` (an absolute path) with stdout and stderr appended to `outputPath`.
    init(_ argv: [String], environment: [String: String] = ProcessInfo.processInfo.environment,
         outputPath: String) throws {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attr, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (cArgv + cEnv).forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, argv[0], &actions, &attr, cArgv, cEnv)
        guard rc == 0 else { throw FixtureError("cannot start \(argv[0]): \(String(cString: strerror(rc)))") }
        pid = child
    }

    /// The exit status once it has ended (nil while running); a signal's death is 128 + the signal.
    func exitStatus() -> Int32? {
        if status == nil {
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid {
                let signal = raw & 0x7f
                status = signal == 0 ? (raw >> 8) & 0xff : 128 + signal
            }
        }
        return status
    }

    var isRunning: Bool { exitStatus() == nil }

    /// Waits up to `timeout` for it to end; its exit status, or nil if it is still running.
    func wait(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = exitStatus() { return status }
            usleep(10_000)
        }
        return exitStatus()
    }

    /// SIGTERM, then SIGKILL if it is still there after `grace`; always reaps it.
    func stop(grace: Duration = .seconds(5)) {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        if wait(timeout: grace) == nil {
            kill(pid, SIGKILL)
            _ = wait(timeout: .seconds(5))
        }
    }
}
