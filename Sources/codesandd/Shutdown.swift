import Dispatch
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
    /// Keeps the dispatch sources alive for the process's life.
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    static func stream() -> AsyncStream<DaemonSignal> {
        AsyncStream { continuation in
            for (sig, what) in [(SIGTERM, DaemonSignal.stop), (SIGINT, .stop), (SIGHUP, .reload)] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler { continuation.yield(what) }
                source.resume()
                sources.append(source)
            }
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
