import CodesandCore
import CodesandProtocol
import CodesandServer
import Foundation
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The real dispatcher and socket server (framing, connection handling, limits) over a
/// RunService on InstantBackend, listening on a unix socket of its own.
final class FuzzServer {
    static let maxLine = 8192
    let dispatcher: Dispatcher
    let server: RPCServer
    let channel: Channel
    let path: String

    init() async throws {
        let service = try await testService(InstantBackend()) { $0.queueMax = 1000 }
        let logger = quietLogger
        let tracker = RequestTracker()
        dispatcher = Dispatcher(service: service, isShuttingDown: { tracker.isStopping })
        server = RPCServer(dispatcher: dispatcher, tracker: tracker, maxMessageBytes: Self.maxLine,
                           connectionLimits: ConnectionLimits(total: 64, perUID: 64), logger: logger)
        path = "/tmp/codesand-fuzz-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        channel = try await server.bind(path: path, group: "codesand", mode: 0o600)
    }

    func stop() async {
        try? await channel.close()
        try? await server.shutdownEventLoops()
        dispatcher.service.stop()
        unlink(path)
    }

    /// Sends `input` on a new connection, ends the sending side, and reads what comes back until
    /// the server closes. nil when it did not close within `timeout` seconds.
    func exchange(_ input: [UInt8], timeout: Int = 10) -> [UInt8]? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { return nil }
        var sent = 0
        while sent < input.count {
            let n = input.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }  // the server closed after an over-long line: what it sent is still readable
            sent += n
        }
        shutdown(fd, Int32(SHUT_WR))
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n == 0 || (n < 0 && errno == ECONNRESET) { break }
            if n < 0 { return nil }  // timeout: the server never closed
            received += chunk[0..<n]
        }
        return received
    }
}
