import CodesandCore
import XCTest

@testable import CodesandLXD

/// The hand-over line a pre-started launcher's script reads (LXDPrestart): one line, which printf's
/// %b turns back into "path\0arg…" (the shell half is exercised against LXD in Tests/LXDTests).
final class LXDPrestartHandOverTests: XCTestCase {
    func test_separators_newlines_and_backslashes_are_octal_escapes_on_one_line() throws {
        let line = try LXDPrestarted.handOver(["/home/sandbox/main.py", "a b", "", "c\nd", "e\\0000f", "é%s"])
        XCTAssertEqual(String(decoding: line, as: UTF8.self),
                       "/home/sandbox/main.py\\0000a b\\0000\\0000c\\0012d\\0000e\\01340000f\\0000é%s\n")
        XCTAssertEqual(line.filter { $0 == UInt8(ascii: "\n") }.count, 1)
    }

    func test_the_path_alone_has_no_separator_and_a_nul_is_refused() throws {
        XCTAssertEqual(try LXDPrestarted.handOver(["/p"]), Array("/p\n".utf8))
        XCTAssertThrowsError(try LXDPrestarted.handOver(["/p", "a\u{0}b"]))
    }
}
