import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A unix socket that answers each request line with a script (`$ID` is replaced by the request's
/// id), on one thread per connection, and records the requests.
final class ScriptedDaemon: @unchecked Sendable {
    enum Step {
        case line(String)
        /// 50 ms, so the client reads what came before on its own.
        case pause
        case hangUp
    }

    let path = "/tmp/codesand-stream-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
    private let fd: Int32
    private let script: [Step]
    private let received = Mutex<[String]>([])

    var requests: [String] { received.withLock { $0 } }

    init(_ script: [Step]) throws {
        self.script = script
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else { throw POSIXError(.EADDRINUSE) }
        Thread.detachNewThread { [self] in
            while true {
                let conn = accept(fd, nil, nil)
                guard conn >= 0 else { return }
                Thread.detachNewThread { [self] in serve(conn) }
            }
        }
    }

    private func serve(_ conn: Int32) {
        defer { close(conn) }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while recv(conn, &byte, 1, 0) == 1 {
            guard byte == UInt8(ascii: "\n") else { line.append(byte); continue }
            let request = String(decoding: line, as: UTF8.self)
            line.removeAll()
            received.withLock { $0.append(request) }
            let id = request.firstMatch(of: /"id":(\d+)/).map { String($0.1) } ?? "null"
            for step in script {
                switch step {
                case .line(let text):
                    let bytes = Array((text.replacingOccurrences(of: "$ID", with: id) + "\n").utf8)
                    guard send(conn, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else { return }
                case .pause:
                    usleep(50_000)
                case .hangUp:
                    return
                }
            }
        }
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }
}
