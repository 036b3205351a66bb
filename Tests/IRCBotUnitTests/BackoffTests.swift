import CodesandIRCBot
import XCTest

/// Reconnect waits: doubling up to the cap, jitter between half and all, reset after a good session.
final class BackoffTests: XCTestCase {
    func test_waits_double_up_to_the_maximum_with_the_top_of_the_jitter() {
        var b = Backoff(initial: .seconds(2), maximum: .seconds(30), stableAfter: .seconds(60))
        let waits = (0..<6).map { _ in b.next(connectedFor: .zero, random: { 0.999999 }) }
        XCTAssertEqual(waits.map { Int(($0 / .milliseconds(1)).rounded()) }, [2000, 4000, 8000, 16000, 30000, 30000])
    }

    func test_jitter_draws_between_half_and_all_of_the_wait() {
        var low = Backoff(initial: .seconds(4), maximum: .seconds(60))
        XCTAssertEqual(low.next(connectedFor: .zero, random: { 0 }), .seconds(2))
        var mid = Backoff(initial: .seconds(4), maximum: .seconds(60))
        XCTAssertEqual(mid.next(connectedFor: .zero, random: { 0.5 }), .seconds(3))
        // Real randomness stays in the band.
        for _ in 0..<100 {
            var b = Backoff(initial: .seconds(4), maximum: .seconds(60))
            let w = b.next(connectedFor: .zero, random: { Double.random(in: 0..<1) })
            XCTAssertTrue(w >= .seconds(2) && w <= .seconds(4), "\(w)")
        }
    }

    func test_a_long_connection_resets_the_wait_but_a_short_one_does_not() {
        var b = Backoff(initial: .seconds(1), maximum: .seconds(100), stableAfter: .seconds(60))
        for _ in 0..<4 { _ = b.next(connectedFor: .zero, random: { 1 }) }
        XCTAssertEqual(b.next(connectedFor: .seconds(5), random: { 1 }), .seconds(16))
        XCTAssertEqual(b.next(connectedFor: .seconds(600), random: { 1 }), .seconds(1))
        XCTAssertEqual(b.next(connectedFor: .zero, random: { 1 }), .seconds(2))
    }
}
