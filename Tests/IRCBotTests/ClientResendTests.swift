import CodesandClient
import CodesandProtocol
import Foundation
import Synchronization
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The reconnecting client must never run a snippet twice: a call that reached the daemon and then
/// lost its connection fails; only a call that never left is sent again. A scripted fake daemon
/// shows what arrived. (No root needed.)
final class ClientResendTests: XCTestCase {
    func test_a_call_in_flight_when_the_connection_drops_fails_and_is_not_sent_again() async throws {
        let fake = try HangUpDaemon()
        defer { fake.stop() }
        let client = try await CodesandClient.connect(socketPath: fake.path)
        do {
            _ = try await client.run(RunParams(language: "python3", code: "print(1)"), timeout: .seconds(10))
            XCTFail("the call succeeded although the daemon hung up")
        } catch {
            XCTAssertEqual(error, .connectionClosed)
        }
        try await Task.sleep(for: .milliseconds(300))  // time for a wrong resend to arrive
        XCTAssertEqual(fake.requests.count, 1, "\(fake.requests)")
        await client.close()
    }
}

/// A unix socket that reads one request line per connection, records it, and hangs up without
/// answering: a daemon that died mid-run.
final class HangUpDaemon: @unchecked Sendable {
    let path = "/tmp/codesand-hangup-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
    private let fd: Int32
    private let received = Mutex<[String]>([])
    private let stopped = Atomic<Bool>(false)

    var requests: [String] { received.withLock { $0 } }

    init() throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else { throw FixtureError("cannot listen on \(path)") }
        Thread.detachNewThread { [self] in serve() }
    }

    private func serve() {
        while !stopped.load(ordering: .relaxed) {
            let conn = accept(fd, nil, nil)
            guard conn >= 0 else { return }
            var line: [UInt8] = []
            var byte: UInt8 = 0
            while recv(conn, &byte, 1, 0) == 1 && byte != UInt8(ascii: "\n") { line.append(byte) }
            if !line.isEmpty { received.withLock { $0.append(String(decoding: line, as: UTF8.self)) } }
            close(conn)
        }
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }
}
