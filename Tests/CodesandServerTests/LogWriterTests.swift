import CodesandServer
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// LogWriter: whoever logs never waits for stderr; lines past its queue's bound are dropped and
/// counted, and the count is written once stderr takes lines again.
final class LogWriterTests: XCTestCase {
    func test_a_full_stderr_never_blocks_a_logger_and_lost_lines_are_counted() throws {
        var p: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&p), 0)
        defer { close(p[0]); close(p[1]) }
        XCTAssertGreaterThan(fcntl(p[1], 1031 /* F_SETPIPE_SZ */, 4096), 0)
        let writer = LogWriter(fd: p[1], maxQueuedBytes: 10_000)
        let line = Array(String(repeating: "x", count: 99).utf8) + [10]  // 100 bytes
        let start = Date()
        for _ in 0..<1000 { writer.write(line) }  // 100 kB into a 4 KiB pipe nobody reads yet
        XCTAssertLessThan(Date().timeIntervalSince(start), 2, "a logger waited for stderr")

        // Now read: what the pipe took, then the queue (at most 10 kB of lines), then the count.
        var text = ""
        var buffer = [UInt8](repeating: 0, count: 65536)
        let flags = fcntl(p[0], F_GETFL)
        _ = fcntl(p[0], F_SETFL, flags | O_NONBLOCK)
        func tally() -> (kept: Int, dropped: Int) {
            let lines = text.split(separator: "\n")
            let notes = lines.filter { $0.contains("log lines dropped") }
            return (lines.filter { $0.allSatisfy { $0 == "x" } }.count, notes.reduce(0) { $0 + (Int($1.split(separator: " ")[1]) ?? -1_000_000) })
        }
        for _ in 0..<1000 {
            let n = read(p[0], &buffer, buffer.count)
            if n > 0 { text += String(decoding: buffer[0..<n], as: UTF8.self); continue }
            let t = tally()  // only when the pipe is empty: it reads the whole text
            if t.kept + t.dropped >= 1000 { break }
            usleep(5000)
        }
        let (kept, dropped) = tally()
        XCTAssertEqual(kept + dropped, 1000, "every line written or counted as dropped: \(text.suffix(300))")
        XCTAssertGreaterThan(dropped, 700)  // at most ~300 fit: the pipe, the queue, a batch in the writer
        XCTAssertGreaterThan(kept, 40)

        // And it goes on writing once stderr takes lines.
        writer.write(Array("after\n".utf8))
        writer.flush(timeoutMs: 2000)
        var after = ""
        for _ in 0..<200 where !after.contains("after") {
            let n = read(p[0], &buffer, buffer.count)
            if n > 0 { after += String(decoding: buffer[0..<n], as: UTF8.self) } else { usleep(5000) }
        }
        XCTAssertEqual(after, "after\n")
    }

    /// Lines written in bursts and one by one, from several threads, come out whole, each thread's
    /// in its order, none lost: the writer batches what gathers while it lingers.
    func test_lines_from_several_threads_come_out_whole_and_in_each_threads_order() throws {
        var p: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&p), 0)
        defer { close(p[0]); close(p[1]) }
        let writer = LogWriter(fd: p[1])
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for i in 0..<300 {
                writer.write(Array("t\(t) \(i) \(String(repeating: "y", count: i % 50))\n".utf8))
                if i % 100 == 99 { usleep(15_000) }  // past the linger: the next line wakes the writer
            }
        }
        writer.flush(timeoutMs: 5000)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        _ = fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK)
        var text = ""
        while true {
            let n = read(p[0], &buffer, buffer.count)
            if n <= 0 { break }
            text += String(decoding: buffer[0..<n], as: UTF8.self)
        }
        var next = [0, 0, 0, 0]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: false)
            guard f.count == 3, let t = Int(f[0].dropFirst()), let i = Int(f[1]) else { return XCTFail("a broken line: \(line)") }
            XCTAssertEqual(i, next[t], "thread \(t)")
            XCTAssertEqual(f[2].count, i % 50)
            next[t] = i + 1
        }
        XCTAssertEqual(next, [300, 300, 300, 300])
    }
}
