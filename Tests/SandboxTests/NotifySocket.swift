import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A stand-in for systemd's $NOTIFY_SOCKET: a datagram socket the daemon's sd_notify messages
/// (READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1…) arrive on, one message a datagram.
final class NotifySocket {
    let path: String
    private let fd: Int32

    init(path: String, receiveTimeoutSeconds: Int = 20) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, bound == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL) }
        var tv = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// The next message, or nil after the receive timeout.
    func next() -> String? {
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            return n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : nil
        }
    }

    /// Reads until a message containing `tag` (e.g. "STOPPING=1"); returns every message read,
    /// that one last; nil if none came before the timeout.
    func wait(for tag: String) -> [String]? {
        var seen: [String] = []
        while let m = next() {
            seen.append(m)
            if m.contains(tag) { return seen }
        }
        return nil
    }
}
