import Foundation

#if canImport(Glibc)
import Glibc
#endif

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
