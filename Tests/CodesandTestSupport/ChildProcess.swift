import CodesandSpawn
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A program the tests start (ngircd, make), with a fixed argv and never a shell.
///
/// Not Foundation's `Process`: a child inherits the spawning thread's signal mask, and threads in
/// this test process block SIGTERM, so an ngircd started that way ignores `terminate()` and the
/// test hangs waiting for it. Spawn starts it with an empty mask and default handlers.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    private var status: Int32?

    /// Starts `argv[0]` (an absolute path) with stdout and stderr appended to `outputPath`.
    public init(_ argv: [String], environment: [String: String] = ProcessInfo.processInfo.environment,
         outputPath: String) throws {
        var spawn = Spawn(argv, environment: environment.map { "\($0.key)=\($0.value)" })
        spawn.stdout = .file(outputPath, append: true)
        spawn.stderr = .sameAsStdout
        do {
            pid = try spawn.start()
        } catch {
            throw FixtureError("\(error)")
        }
    }

    /// The exit status once it has ended (nil while running); a signal's death is 128 + the signal.
    public func exitStatus() -> Int32? {
        if status == nil {
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid {
                let signal = raw & 0x7f
                status = signal == 0 ? (raw >> 8) & 0xff : 128 + signal
            }
        }
        return status
    }

    public var isRunning: Bool { exitStatus() == nil }

    /// Waits up to `timeout` for it to end; its exit status, or nil if it is still running.
    public func wait(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = exitStatus() { return status }
            usleep(10_000)
        }
        return exitStatus()
    }

    /// SIGTERM, then SIGKILL if it is still there after `grace`; always reaps it.
    public func stop(grace: Duration = .seconds(5)) {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        if wait(timeout: grace) == nil {
            kill(pid, SIGKILL)
            _ = wait(timeout: .seconds(5))
        }
    }
}

/// A test fixture could not be set up; the description says why.
public struct FixtureError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
