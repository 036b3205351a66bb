import CodesandClient
import CodesandProtocol
import Foundation
import XCTest

/// The reconnecting client must never run a snippet twice: a call that reached the daemon and then
/// lost its connection fails; only a call that never left is sent again. A scripted fake daemon
/// shows what arrived. (No root needed.)
final class ClientResendTests: XCTestCase {
    func test_a_call_in_flight_when_the_connection_drops_fails_and_is_not_sent_again() async throws {
        let fake = try ScriptedDaemon([.hangUp])  // reads the request, then dies without answering
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
