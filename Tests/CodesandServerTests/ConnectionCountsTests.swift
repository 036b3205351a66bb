@testable import CodesandServer
import CodesandProtocol
import XCTest

/// Who may open one more connection: the total and per-uid counts (the socket side is in
/// SandboxTests/ConnectionLimitTests).
final class ConnectionCountsTests: XCTestCase {
    func test_the_total_cap_refuses_everyone_and_the_per_uid_cap_only_that_uid() {
        var counts = ConnectionCounts(limits: ConnectionLimits(total: 5, perUID: 3))
        for _ in 1...3 { XCTAssertNil(counts.admit(uid: 1000)) }
        let perUID = counts.admit(uid: 1000)
        XCTAssertEqual(perUID?.code, -32004)
        XCTAssertEqual(perUID?.data, .object(["limit": .string("per_uid"), "max": .int(3)]))
        XCTAssertNil(counts.admit(uid: 1001))
        XCTAssertNil(counts.admit(uid: 1002))
        let total = counts.admit(uid: 1003)
        XCTAssertEqual(total?.knownCode, .tooManyConnections)
        XCTAssertEqual(total?.data, .object(["limit": .string("total"), "max": .int(5)]))
        XCTAssertEqual(counts.total, 5, "refusals are not counted")
    }

    func test_a_release_frees_a_place_for_its_uid_and_in_all() {
        var counts = ConnectionCounts(limits: ConnectionLimits(total: 2, perUID: 1))
        XCTAssertNil(counts.admit(uid: 7))
        XCTAssertNotNil(counts.admit(uid: 7))
        counts.release(uid: 7)
        XCTAssertEqual(counts.byUID, [:], "no entry is kept for a uid with no connection")
        XCTAssertNil(counts.admit(uid: 7))
        XCTAssertNil(counts.admit(uid: 8))
        XCTAssertNotNil(counts.admit(uid: 9))
    }

    func test_a_per_uid_cap_above_the_total_is_the_total() {
        XCTAssertEqual(ConnectionLimits(total: 4, perUID: 64).perUID, 4)
    }
}
