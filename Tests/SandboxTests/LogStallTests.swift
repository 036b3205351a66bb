import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A stderr that takes nothing (a stalled journald, a pipe whose reader stopped reading) must not
/// stop the daemon from answering: log lines wait in LogWriter's queue, or are dropped and counted.
final class LogStallTests: XCTestCase {
    func test_a_stderr_that_takes_nothing_costs_no_reply_and_every_line_comes_later() throws {
        try requireRoot()
        let fifo = "/tmp/codesand-logstall-\(getpid())-\(UInt32.random(in: 0...99_999))"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        defer { unlink(fifo) }
        // Held open here (so the daemon's open does not wait for a reader) and not read: the pipe
        // fills after a page of log lines (the daemon logs one line per run).
        let held = open(fifo, O_RDWR | O_CLOEXEC | O_NONBLOCK)
        XCTAssertGreaterThanOrEqual(held, 0)
        defer { close(held) }
        XCTAssertGreaterThan(fcntl(held, 1031 /* F_SETPIPE_SZ */, 4096), 0)
        // The daemon's stderr goes to the FIFO (a fixed path of the test's; no input of anyone's).
        let daemon = try TestDaemon(pool: 2, argvPrefix: ["/bin/sh", "-c", "exec \"$0\" \"$@\" 2>\(fifo)"])
        let client = try RawClient(path: daemon.socket, timeoutSeconds: 10)
        for i in 1...80 {
            client.send(#"{"jsonrpc":"2.0","id":\#(i),"method":"run","params":{"language":"sh","code":"echo \#(i)"}}"# + "\n")
            let reply = client.readJSON() as? [String: Any]
            let result = reply?["result"] as? [String: Any]
            XCTAssertEqual(result?["stdout"] as? String, "\(i)\n", "run \(i) unanswered with stderr full: \(String(describing: reply))")
            if result == nil { break }
        }
        // Read what was written, then what was queued: every run's line comes (the queue held them).
        var text = ""
        var buffer = [UInt8](repeating: 0, count: 65536)
        func runLines() -> Int { text.components(separatedBy: "status=ok").count - 1 }
        for _ in 0..<300 where runLines() < 80 {
            let n = read(held, &buffer, buffer.count)
            if n > 0 { text += String(decoding: buffer[0..<n], as: UTF8.self) } else { usleep(10_000) }
        }
        XCTAssertEqual(runLines(), 80, "each run's line, once stderr takes them: \(text.suffix(500))")
        XCTAssertNotNil(daemon.stop(), "the daemon stops")
    }
}
