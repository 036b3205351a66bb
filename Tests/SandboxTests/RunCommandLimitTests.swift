import CodesandProtocol
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `codesand run`'s limit flags, as a user types them, against the real daemon: one per limit of
/// the table, each reaching the daemon under its key.
final class RunCommandLimitTests: XCTestCase {
    var daemon: TestDaemon!

    override func setUp() async throws {
        daemon = try TestDaemon(pool: 1)
    }

    override func tearDown() async throws {
        daemon = nil
    }

    /// Runs `codesand run` with these arguments: its exit status and its stdout + stderr.
    func codesandRun(_ arguments: [String]) throws -> (status: Int32?, output: String) {
        let p = try TestProcess([productsDirectory() + "/codesand", "run", "--socket", daemon.socket, "-l", "python3"] + arguments,
                                log: "\(daemon.dir)/cli-\(UInt32.random(in: 0...UInt32.max)).log")
        let status = p.wait(timeout: 60)
        return (status.map { ($0 >> 8) & 0xff }, p.log)
    }

    /// A value above the daemon's maximum comes back as -32602 naming the key: so each flag exists
    /// and lands on its own limit.
    func test_each_limit_flag_reaches_the_daemon_as_its_key() throws {
        for limit in Limit.allCases {
            let tooHigh = limit.row.ceiling
            let (status, output) = try codesandRun(["--\(limit.flag)", "\(tooHigh)", "print(1)"])
            XCTAssertNotEqual(status, 0, output)
            XCTAssertTrue(output.contains("params.limits.\(limit.key) is \(tooHigh), above this daemon's maximum"), output)
        }
    }

    func test_the_wall_ms_and_output_lines_flags_take_effect() throws {
        let (spinStatus, spinOutput) = try codesandRun(["--wall-ms", "500", "while True: pass"])
        XCTAssertEqual(spinStatus, 124, spinOutput)
        XCTAssertTrue(spinOutput.contains("timed out"), spinOutput)
        // Flushed line by line, then asleep: only the kill at the limit can end it in time.
        let (linesStatus, lines) = try codesandRun(["--output-lines", "3", "--wall-ms", "5000",
                                                    "import time\nfor i in range(100): print(i, flush=True)\ntime.sleep(30)"])
        XCTAssertEqual(linesStatus, 128 + SIGKILL, "killed at the output limit: \(lines)")
        XCTAssertEqual(lines.split(separator: "\n").filter { Int($0) != nil }, ["0", "1", "2"], lines)
        XCTAssertTrue(lines.contains("killed: output limit reached"), lines)
    }

    /// All its output in one write at exit: the program may end before the kill lands. Either way
    /// the output is cut at the limit and the user is told so.
    func test_output_cut_at_the_limit_is_told_even_when_the_program_ended_first() throws {
        for _ in 0..<3 {
            let (status, output) = try codesandRun(["--output-lines", "3", "for i in range(100): print(i)"])
            XCTAssertTrue(status == 0 || status == 128 + SIGKILL, "\(String(describing: status)): \(output)")
            XCTAssertEqual(output.split(separator: "\n").filter { Int($0) != nil }, ["0", "1", "2"], output)
            XCTAssertTrue(output.contains("output limit reached"), output)
        }
    }
}
