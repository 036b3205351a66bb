import CodesandClient
import CodesandProtocol
import CodesandTestSupport
import XCTest

/// What a bot needs from `CodesandClient` over a long life, against a real daemon (as root).
final class SwiftClientTests: XCTestCase {
    var daemon: LiveDaemon!

    override func setUp() async throws {
        try requireRoot()
        daemon = try await LiveDaemon(pool: 2)
    }

    override func tearDown() async throws {
        await daemon?.shutdown()
    }

    func test_concurrent_requests_on_one_client_connection_all_complete_with_their_own_results() async throws {
        let client = try await CodesandClient.connect(socketPath: daemon.path)
        // More requests than sandboxes, with different run times, so replies come back out of order.
        let results = try await withThrowingTaskGroup(of: (Int, RunResult).self) { group in
            for i in 0..<8 {
                group.addTask {
                    let code = "import time; time.sleep(\(Double(7 - i) * 0.05)); print(\(i) * 11)"
                    return (i, try await client.run(RunParams(language: "python3", code: code), timeout: .seconds(60)))
                }
            }
            var out: [Int: RunResult] = [:]
            for try await (i, r) in group { out[i] = r }
            return out
        }
        XCTAssertEqual(results.count, 8)
        for i in 0..<8 { XCTAssertEqual(results[i]?.stdout, "\(i * 11)\n", "request \(i)") }
        await client.close()
    }

    func test_the_client_recovers_after_the_daemon_restarts() async throws {
        let client = try await CodesandClient.connect(socketPath: daemon.path)
        let before = try await client.run(RunParams(language: "python3", code: "print('before')"))
        XCTAssertEqual(before.stdout, "before\n")

        await daemon.stopServing()
        // While the daemon is away, a call fails with an error a bot can report; it does not hang.
        do {
            _ = try await client.run(RunParams(language: "python3", code: "print('away')"), timeout: .seconds(10))
            XCTFail("a call succeeded with no daemon")
        } catch .connectFailed, .connectionClosed {
            // expected: nobody listens on the socket
        } catch {
            XCTFail("unexpected error \(error)")
        }

        try await daemon.serve()  // the same socket path, a new server
        let after = try await client.run(RunParams(language: "python3", code: "print('after')"), timeout: .seconds(30))
        XCTAssertEqual(after.stdout, "after\n")
        await client.close()
    }

    func test_a_restart_between_calls_is_invisible_to_the_next_call() async throws {
        let client = try await CodesandClient.connect(socketPath: daemon.path)
        _ = try await client.status()
        await daemon.stopServing()
        try await daemon.serve()
        // The old connection is closed (or about to be): the call goes out on a new one.
        let result = try await client.run(RunParams(language: "python3", code: "print(2 + 2)"), timeout: .seconds(30))
        XCTAssertEqual(result.stdout, "4\n")
        await client.close()
    }

    func test_a_closed_client_stays_closed() async throws {
        let client = try await CodesandClient.connect(socketPath: daemon.path)
        await client.close()
        do {
            _ = try await client.status()
            XCTFail("a closed client made a call")
        } catch {
            XCTAssertEqual(error, .connectionClosed)
        }
    }
}
