import CodesandIRCBot
import XCTest

/// The bot's pace: a burst, then the refill rate; connection lines before chat; a bound.
final class SendQueueTests: XCTestCase {
    let t0 = ContinuousClock.now

    /// Sends everything, stepping the clock by each wait: when (after t0) each line went.
    func schedule(_ q: inout SendQueue) -> [(Duration, IRCMessage)] {
        var now = t0, out: [(Duration, IRCMessage)] = []
        while true {
            switch q.next(now: now) {
            case .send(let m): out.append((now - t0, m))
            case .wait(let d): now += d
            case .empty: return out
            }
        }
    }

    func test_twenty_answers_go_as_a_burst_of_five_then_one_a_second() {
        var q = SendQueue(burst: 5, perSecond: 1, now: t0)
        for i in 0..<20 { q.push(.privmsg("#c", "\(i)")) }
        let sent = schedule(&q)
        XCTAssertEqual(sent.map { $0.1.params[1] }, (0..<20).map { "\($0)" })
        let seconds = sent.map { Int(($0.0 / .milliseconds(1) / 1000).rounded()) }
        XCTAssertEqual(seconds, [0, 0, 0, 0, 0] + Array(1...15))
        // Never more than burst + elapsed seconds lines by any time: what a server's flood counter allows.
        for (i, (at, _)) in sent.enumerated() { XCTAssertLessThanOrEqual(Double(i + 1), 5 + at / .seconds(1) + 0.001) }
    }

    func test_connection_lines_go_before_queued_chat() {
        var q = SendQueue(burst: 1, perSecond: 1, now: t0)
        q.push(.privmsg("#c", "a"))
        q.push(.privmsg("#c", "b"))
        q.push(IRCMessage("PONG", ["irc.test"]))
        XCTAssertEqual(schedule(&q).map { $0.1.command }, ["PONG", "PRIVMSG", "PRIVMSG"])
    }

    func test_chat_past_the_bound_is_dropped_but_connection_lines_are_kept() {
        var q = SendQueue(burst: 1, perSecond: 1, maxQueued: 3, now: t0)
        XCTAssertEqual((0..<5).map { q.push(.privmsg("#c", "\($0)")) }, [true, true, true, false, false])
        XCTAssertTrue(q.push(IRCMessage("PONG", ["x"])))
        XCTAssertEqual(q.dropped, 2)
        XCTAssertEqual(q.count, 4)
    }
}
