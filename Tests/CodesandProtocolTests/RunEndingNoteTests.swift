import CodesandProtocol
import XCTest

/// The note `codesand run` prints after the output.
final class RunEndingNoteTests: XCTestCase {
    private func result(_ status: RunStatus, exitCode: Int32?, truncated: Bool) -> RunResult {
        RunResult(status: status, exitCode: exitCode, signal: exitCode == nil ? "SIGKILL" : nil, timedOut: false, oomKilled: false,
                  truncated: truncated, stdout: "", stderr: "", output: [], wallMs: 10, cpuMs: 5, memoryPeakBytes: 0)
    }

    func test_output_cut_is_told_whether_the_kill_or_the_programs_exit_came_first() {
        XCTAssertEqual(result(.outputLimit, exitCode: nil, truncated: true).endingNote, "killed: output limit reached, output truncated")
        for (status, code) in [(RunStatus.ok, Int32(0)), (.error, 3)] {
            XCTAssertEqual(result(status, exitCode: code, truncated: true).endingNote,
                           "output limit reached, output truncated (the program had already ended)")
            XCTAssertNil(result(status, exitCode: code, truncated: false).endingNote)
        }
    }

    func test_each_kill_is_named() {
        XCTAssertEqual(result(.timeout, exitCode: nil, truncated: false).endingNote, "timed out after 10 ms (cpu 5 ms)")
        XCTAssertEqual(result(.signal, exitCode: nil, truncated: false).endingNote, "killed by SIGKILL")
    }
}
