import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// What wakes the daemon's threads on each run, against the real daemon. Every sandbox's init is a
/// child of the daemon's parent thread; while that thread blocked SIGCHLD, each init's exit queued
/// one for the process, which woke the main thread (libdispatch's sigsuspend) and the dispatch
/// manager (its signalfd) once per run, for nothing.
final class DaemonWakeupTests: XCTestCase {
    func test_sandbox_exits_wake_no_thread_that_takes_signals() throws {
        let daemon = try TestDaemon(pool: 2)
        let client = try RawClient(path: daemon.socket, timeoutSeconds: 30)
        let warm = result(client.call(#"{"jsonrpc":"2.0","id":0,"method":"run","params":{"language":"bash","code":"echo 0"}}"#))
        XCTAssertEqual(warm?["stdout"] as? String, "0\n", "\(String(describing: warm))")
        let before = Self.voluntarySwitches(pid: daemon.pid)
        let runs = 40
        for i in 1...runs {
            let r = result(client.call(#"{"jsonrpc":"2.0","id":\#(i),"method":"run","params":{"language":"bash","code":"echo \#(i)"}}"#))
            XCTAssertEqual(r?["stdout"] as? String, "\(i)\n", "\(String(describing: r))")
        }
        usleep(300_000)  // the last slots' teardown and prepare
        let after = Self.voluntarySwitches(pid: daemon.pid)
        XCTAssertNotNil(before)
        XCTAssertNotNil(after)
        // Each run ended one init: 40 SIGCHLDs, which woke it 41 times before.
        XCTAssertLessThan((after ?? 0) - (before ?? 0), 8, "the main thread woke that often in \(runs) runs")
    }

    /// The main thread's voluntary context switches (/proc/PID/task/PID/status).
    static func voluntarySwitches(pid: pid_t) -> Int? {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("voluntary_ctxt_switches:") }
        return line.flatMap { Int($0.split(separator: "\t").last.map(String.init) ?? "") }
    }
}
