import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Waits for SIGTERM or SIGINT (graceful stop).
enum Shutdown {
    static func waitForSignal() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let once = OnceFlag()
            var sources: [DispatchSourceSignal] = []
            for sig in [SIGTERM, SIGINT] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler {
                    if once.fire() { c.resume() }
                }
                source.resume()
                sources.append(source)
            }
            Keep.sources = sources
        }
    }

    final class OnceFlag: @unchecked Sendable {
        private let lock = NSLock()
        private var fired = false
        func fire() -> Bool {
            lock.lock()
            defer { lock.unlock() }
            if fired { return false }
            fired = true
            return true
        }
    }

    enum Keep { nonisolated(unsafe) static var sources: [DispatchSourceSignal] = [] }
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
