import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A deliberately dumb client for wire tests: raw bytes in, lines out, with a receive timeout.
final class RawClient {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(path: String, timeoutSeconds: Int = 20) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let bytes = Array(path.utf8)
            for (i, b) in bytes.enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        // connect() to a listener whose backlog is full waits; SO_SNDTIMEO bounds that wait (and each send's).
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        // The socket file appears at bind(), a moment before listen(): retry a refused connect briefly.
        var rc: Int32 = -1
        for _ in 0..<100 {
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if rc == 0 || errno != ECONNREFUSED { break }
            usleep(20_000)
        }
        guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .ECONNREFUSED) }  // deinit closes fd
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    /// Sends every byte, blocking as Python's `socket.sendall` does: nil when all were sent, else
    /// the errno that stopped it (EPIPE, ECONNRESET: the daemon closed while we were sending).
    func sendAll(_ bytes: [UInt8]) -> Int32? {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return errno }
            off += n
        }
        return nil
    }

    /// Ends our sending side, as `echo … | socat` does after its input.
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// The next line, or nil at EOF or timeout.
    func readLine() -> String? {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                let line = Array(buffer[..<i])
                buffer.removeFirst(i + 1)
                return String(decoding: line, as: UTF8.self)
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            buffer += chunk[0..<n]
        }
    }

    /// The next line parsed as JSON.
    func readJSON() -> Any? {
        guard let line = readLine() else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(line.utf8))
    }

    func call(_ json: String) -> [String: Any]? {
        send(json + "\n")
        return readJSON() as? [String: Any]
    }

    /// True when the server closed the connection (EOF within the timeout).
    func isClosedByServer() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return true }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return errno == ECONNRESET }  // closed with our unread bytes still queued
        }
    }
}

func errorCode(_ reply: [String: Any]?) -> Int? { (reply?["error"] as? [String: Any])?["code"] as? Int }
func result(_ reply: [String: Any]?) -> [String: Any]? { reply?["result"] as? [String: Any] }
