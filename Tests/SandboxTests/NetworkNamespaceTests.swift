import CodesandCore
import CodesandProtocol
import Foundation
import XCTest

/// Each slot keeps its network namespace for its next sandbox while no run has used the network
/// (SlotNetworks, sandbox_netns.c); a run that did leaves nothing the next can see: that one gets
/// a new namespace.
final class NetworkNamespaceTests: XCTestCase {
    override func setUp() async throws {
        try requireRoot()
    }

    /// The namespace a run is in, as the kernel names it ("net:[4026532…]").
    private static let whichNamespace = "readlink /proc/self/ns/net"

    func test_a_slot_keeps_its_network_namespace_while_runs_do_not_use_the_network() async throws {
        let live = try await LiveService(pool: 1)
        defer { live.shutdown() }
        await live.waitUntilReady()
        var seen: [String] = []
        for _ in 0..<6 {
            let r = try await live.run("bash", Self.whichNamespace)
            XCTAssertTrue(r.stdout.hasPrefix("net:["), "\(r)")
            seen.append(r.stdout)
            await live.waitUntilReady()
        }
        // The first sandboxes may come before the slot knows what a fresh namespace looks like.
        XCTAssertEqual(Set(seen.suffix(4)).count, 1, "one namespace for runs that never touch the network: \(seen)")
        let host = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
        XCTAssertNotEqual(seen.last, host + "\n", "never the host's")
    }

    func test_a_run_that_used_the_network_leaves_nothing_to_the_next_run() async throws {
        let live = try await LiveService(pool: 1)
        defer { live.shutdown() }
        await live.waitUntilReady()
        for _ in 0..<3 {
            _ = try await live.run("bash", "true")
            await live.waitUntilReady()
        }
        let before = try await live.run("bash", Self.whichNamespace).stdout
        await live.waitUntilReady()
        // TCP over lo (left in TIME_WAIT), a UDP datagram, an abstract unix socket still bound when
        // the run is killed: each moves the namespace's counters or sockets.
        let user = """
        import socket, time
        srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen()
        c = socket.create_connection(srv.getsockname()); a, _ = srv.accept()
        c.sendall(b'x' * 1000); a.recv(1000); c.close(); a.close(); srv.close()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b'y', ('127.0.0.1', 9))
        x = socket.socket(socket.AF_UNIX); x.bind('\\0codesand-left'); x.listen()
        print(open('/proc/self/net/sockstat').read().split('\\n')[1])
        time.sleep(30)
        """
        let used = try await live.run("python3", user, limits: RunLimits(wallMs: 1000))
        XCTAssertEqual(used.status, .timeout, "\(used)")
        XCTAssertTrue(used.stdout.hasPrefix("TCP: inuse"), "\(used)")
        await live.waitUntilReady()
        let probe = """
        import socket
        lo = next(l for l in open('/proc/self/net/dev') if l.strip().startswith('lo:'))
        print('lo', sum(int(v) for v in lo.split(':')[1].split()))
        tcp = open('/proc/self/net/sockstat').read().split('\\n')[1].split()
        print('tcp', dict(zip(tcp[1::2], tcp[2::2]))['inuse'], dict(zip(tcp[1::2], tcp[2::2]))['tw'])
        udp = next(l for l in open('/proc/self/net/snmp') if l.startswith('Udp:') and l.split()[1].isdigit())
        print('udp out', udp.split()[4])
        x = socket.socket(socket.AF_UNIX); x.bind('\\0codesand-left'); print('abstract name free')
        """
        let after = try await live.run("python3", probe)
        XCTAssertEqual(after.stdout, "lo 0\ntcp 0 0\nudp out 0\nabstract name free\n", "\(after)")
        await live.waitUntilReady()
        let next = try await live.run("bash", Self.whichNamespace).stdout
        XCTAssertNotEqual(next, before, "the used namespace was replaced")
    }
}
