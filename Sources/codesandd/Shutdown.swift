import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The signals the daemon acts on, delivered as an async stream.
enum DaemonSignal: Sendable {
    case stop      // SIGTERM, SIGINT: drain and exit
    case reload    // SIGHUP: re-read the config
}

enum Signals {
    /// The write end of the self-pipe the handler writes each signal's number to.
    nonisolated(unsafe) private static var pipeWriteFD: Int32 = -1

    /// A handler that writes the signal's number to a pipe, read by a thread of its own. Whatever
    /// thread the kernel picks runs the handler, so no signal is lost (with SIG_IGN and a dispatch
    /// source, one delivered to a thread that does not block it was dropped).
    static func stream() -> AsyncStream<DaemonSignal> {
        AsyncStream { continuation in
            var fds: [Int32] = [0, 0]
            guard pipe(&fds) == 0 else { return }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)  // a full pipe drops a signal rather than blocking a handler
            pipeWriteFD = fds[1]
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { sig in
                var byte = UInt8(truncatingIfNeeded: sig)
                _ = write(Signals.pipeWriteFD, &byte, 1)
            }
            action.sa_flags = SA_RESTART
            sigemptyset(&action.sa_mask)
            for sig in [SIGTERM, SIGINT, SIGHUP] { sigaction(sig, &action, nil) }
            let readFD = fds[0]
            let reader = Thread {
                var byte: UInt8 = 0
                while true {
                    let n = read(readFD, &byte, 1)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { return }
                    continuation.yield(Int32(byte) == SIGHUP ? .reload : .stop)
                }
            }
            reader.name = "codesand-signals"
            reader.start()
        }
    }
}

/// systemd socket activation: LISTEN_PID is us and LISTEN_FDS ≥ 1 → the socket is fd 3.
enum SocketActivation {
    static func listenFD() -> Int32? {
        let env = ProcessInfo.processInfo.environment
        guard let pid = env["LISTEN_PID"].flatMap(Int32.init), pid == getpid(),
              let count = env["LISTEN_FDS"].flatMap(Int.init), count >= 1 else { return nil }
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        return 3
    }
}
