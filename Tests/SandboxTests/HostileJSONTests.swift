import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Request lines built to cost a JSON parser the most, at the daemon's maximum size (1 MiB), sent
/// at once on several connections: each gets its error, and a `print(1)` sent meanwhile on another
/// connection is answered as promptly as ever. (Before: a 1 KB line of a 500-deep array cost a
/// second of CPU on Swift's shared pool; two 6 KB lines stalled a `print(1)` for 15 s.)
final class HostileJSONTests: XCTestCase {
    static let maxLine = 1 << 20

    /// (name, line, expected error code, expected id: nil for null).
    static func hostileLines() -> [(String, String, Int, Int?)] {
        func status(_ id: Int, payload: String) -> String {
            #"{"jsonrpc":"2.0","id":\#(id),"method":"status","params":{"x":\#(payload)}}"#
        }
        let room = maxLine - 100
        func repeated(_ item: String) -> String {
            "[" + Array(repeating: item, count: room / (item.utf8.count + 1)).joined(separator: ",") + "]"
        }
        let nested60 = String(repeating: "[", count: 60) + String(repeating: "]", count: 60)
        return [
            // 63 levels in all: within the limit, so every level is parsed, again and again. Three
            // of them: more than the cores (Swift's shared pool has one thread per core).
            ("nested 60 deep, repeated", status(1, payload: repeated(nested60)), -32602, 1),
            ("nested 60 deep, repeated, again", status(7, payload: repeated(nested60)), -32602, 7),
            ("nested 60 deep, repeated, a third time", status(8, payload: repeated(nested60)), -32602, 8),
            ("a MiB of [", String(repeating: "[", count: maxLine), -32600, nil),
            ("numbers", status(3, payload: repeated("-1.2345678901234567890123e-300")), -32602, 3),
            ("a number of a MiB", status(4, payload: "1" + String(repeating: "7", count: room)), -32602, 4),
            ("escapes", status(5, payload: "\"" + String(repeating: #"\u00e9\ud83d\ude00\n\""#, count: room / 24) + "\""), -32602, 5),
            ("distinct keys", status(6, payload: "{" + (0..<(room / 14)).map { #""k\#($0)":0"# }.joined(separator: ",") + "}"), -32602, 6),
        ]
    }

    func test_a_mib_of_hostile_json_on_eight_connections_does_not_stall_a_print_1() throws {
        let daemon = try TestDaemon()
        let warm = try RawClient(path: daemon.socket, timeoutSeconds: 30)
        XCTAssertEqual(result(warm.call(runRequest(id: 1, "print(1)")))?["stdout"] as? String, "1\n")

        let lines = Self.hostileLines()
        for (name, line, _, _) in lines { XCTAssertLessThanOrEqual(line.utf8.count, Self.maxLine, name) }
        let replies = Replies(count: lines.count)
        let group = DispatchGroup(), socket = daemon.socket
        for (i, (_, line, _, _)) in lines.enumerated() {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                guard let c = try? RawClient(path: socket, timeoutSeconds: 120) else { return }
                c.send(line + "\n")
                replies.set(i, c.readJSON() as? [String: Any])
            }
        }
        usleep(300_000)  // the hostile lines are being read and parsed now
        let start = Date()
        let reply = warm.call(runRequest(id: 2, "print(1)"))
        let took = Date().timeIntervalSince(start)
        XCTAssertEqual(result(reply)?["stdout"] as? String, "1\n", "\(String(describing: reply))")
        XCTAssertLessThan(took, 10, "print(1) waited behind the hostile lines")

        XCTAssertEqual(group.wait(timeout: .now() + 180), .success, "hostile lines unanswered")
        for (i, (name, _, code, id)) in lines.enumerated() {
            let r = replies.get(i)
            XCTAssertEqual(errorCode(r), code, "\(name): \(String(describing: r).prefix(300))")
            if let id { XCTAssertEqual(r?["id"] as? Int, id, name) } else { XCTAssertTrue(r?["id"] is NSNull, name) }
        }
        XCTAssertEqual(result(warm.call(runRequest(id: 3, "print(3)")))?["stdout"] as? String, "3\n", "it serves on")
    }
}

/// Replies collected from several threads.
final class Replies: @unchecked Sendable {  // guarded by lock
    private let lock = NSLock()
    private var items: [[String: Any]?]

    init(count: Int) { items = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ reply: [String: Any]?) { lock.withLock { items[i] = reply } }
    func get(_ i: Int) -> [String: Any]? { lock.withLock { items[i] } }
}
