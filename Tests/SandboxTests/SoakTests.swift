import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `codesand soak` for a minute against the real daemon: benign and abusive runs at concurrency 4,
/// every request answered as its kind must be, nothing leaked or left behind.
final class SoakTests: XCTestCase {
    var dir = ""

    override func setUp() async throws {
        try requireRoot()
        let name = "codesand-soak-\(getpid())-\(UInt32.random(in: 0...99_999))"
        dir = "/tmp/\(name)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // The shipped defaults (a pool of 4), with cgroups, state dir and uids of its own.
        try """
        [sandbox]
        cgroup_name = "\(name)"
        state_dir = "\(dir)/state"
        uid_base = \(2_142_000_000 + UInt32.random(in: 0...99_999) * 8)
        """.write(toFile: "\(dir)/config.toml", atomically: true, encoding: .utf8)
    }

    override func tearDown() async throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func test_a_60_second_soak_at_concurrency_4_loses_nothing_and_leaks_nothing() throws {
        let sock = "\(dir)/s.sock"
        let daemon = try TestProcess([productsDirectory() + "/codesandd", "--config", "\(dir)/config.toml", "--socket", sock],
                                     log: "\(dir)/daemon.log")
        XCTAssertTrue(waitForSocket(sock), daemon.log)
        let soak = try TestProcess([productsDirectory() + "/codesand", "soak", "--socket", sock, "--duration", "60", "-c", "4", "--json"],
                                   log: "\(dir)/soak.log")
        XCTAssertEqual(soak.wait(timeout: 300), 0, soak.log)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(soak.log.utf8)) as? [String: Any], soak.log)
        XCTAssertEqual(report["ok"] as? Bool, true, "\(report["failures"] ?? "")")
        XCTAssertEqual(report["daemon_pid"] as? Int, Int(daemon.pid), "the pid status reports is the daemon's")

        // Not vacuous: every kind ran and was answered, benign runs in each third, the daemon measured.
        let kinds = try XCTUnwrap(report["kinds"] as? [[String: Any]])
        XCTAssertEqual(Set(kinds.compactMap { $0["kind"] as? String }),
                       ["python3", "bash", "fork-bomb", "memory-bomb", "endless-output", "sleep", "setsid-daemon", "big-file", "cpu-spin"])
        for kind in kinds {
            XCTAssertGreaterThan(kind["sent"] as? Int ?? 0, 0, "\(kind)")
            XCTAssertEqual(kind["replies"] as? Int, kind["sent"] as? Int, "\(kind)")
            XCTAssertEqual(kind["wrong"] as? Int, 0, "\(kind)")
        }
        let thirds = try XCTUnwrap(report["thirds"] as? [[String: Any]])
        XCTAssertEqual(thirds.count, 3)
        XCTAssertTrue(thirds.allSatisfy { $0["python3"] != nil && $0["bash"] != nil }, "\(thirds)")
        let start = try XCTUnwrap(report["start"] as? [String: Any]), end = try XCTUnwrap(report["end"] as? [String: Any])
        XCTAssertGreaterThan(start["rss_kib"] as? Int ?? 0, 0)
        XCTAssertGreaterThan(start["cgroup_dirs"] as? Int ?? 0, 4, "the slots' cgroups were found")
        XCTAssertLessThanOrEqual(end["fds"] as? Int ?? .max, start["fds"] as? Int ?? 0)
        XCTAssertEqual(report["stray_processes"] as? Int, 0)

        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 30), 0, daemon.log)
    }
}
