import CodesandCore
import XCTest

/// KeyedLines against what cgroup files hold, and what it must refuse.
final class KeyedLinesTests: XCTestCase {
    /// The head of a cgroup v1 memory.stat: `cache` is its own line, not `total_cache`'s.
    let memoryStat = """
        cache 1478656
        rss 0
        shmem 40960
        mapped_file 0
        total_cache 99999999
        total_shmem 7

        """

    func test_each_key_finds_its_own_line_not_a_longer_keys() {
        XCTAssertEqual(KeyedLines.values(memoryStat, ["cache", "shmem", "total_shmem"]), [1478656, 40960, 7])
        XCTAssertEqual(KeyedLines.value(memoryStat, "rss"), 0)
        XCTAssertNil(KeyedLines.value(memoryStat, "cach"))
        XCTAssertNil(KeyedLines.value(memoryStat, "swap"))
    }

    func test_the_first_line_of_a_key_wins_and_a_last_line_needs_no_newline() {
        XCTAssertEqual(KeyedLines.value("oom_kill 3\noom_kill 4", "oom_kill"), 3)
        XCTAssertEqual(KeyedLines.value("a 1\nfrozen 1", "frozen"), 1)
        XCTAssertEqual(KeyedLines.value("usage_usec  -12 ", "usage_usec"), -12)
        XCTAssertEqual(KeyedLines.value("a -9223372036854775808\nb 9223372036854775807", "a"), Int64.min)
        XCTAssertEqual(KeyedLines.value("a -9223372036854775808\nb 9223372036854775807", "b"), Int64.max)
        XCTAssertNil(KeyedLines.value("a 9223372036854775808", "a"))
    }

    func test_lines_that_are_not_key_and_integer_give_nothing() {
        for text in ["oom_kill", "oom_kill ", "oom_kill 1 2", "oom_kill 1x", "oom_kill x", "oom_kill -",
                     "oom_kill 99999999999999999999", "oom_kill\t1", "oom_kill=1", " 1"] {
            XCTAssertNil(KeyedLines.value(text, "oom_kill"), text)
        }
        XCTAssertEqual(KeyedLines.value("oom_kill x\noom_kill 5", "oom_kill"), 5)
        XCTAssertEqual(KeyedLines.values("", ["a", "b"]), [nil, nil])
    }

    func test_multi_byte_text_around_the_keys_is_skipped() {
        XCTAssertEqual(KeyedLines.value("é 1\n🦆 2\nkey 3\n", "key"), 3)
        XCTAssertEqual(KeyedLines.value("é 1\n", "é"), 1)
    }
}
