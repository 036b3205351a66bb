import CodesandCore
import CodesandProtocol
import Foundation
import Glibc
import XCTest

/// A run through a language's zygote (its interpreter a fork) must give what the same run gives
/// through an interpreter started for its sandbox (`zygote = false`: the same launcher, exec'd):
/// the same stdout, stderr, exit code. Used by RubyZygoteTests and PHPZygoteTests.
enum ZygoteFidelity {
    struct Case {
        var code: String
        var args: [String] = []
        var stdin: String = ""
    }

    /// Runs `code` until a run finds its interpreter waiting (the pool learns the demand first).
    static func warmRun(_ live: LiveService, _ language: String, _ c: Case) async throws -> RunResult {
        for _ in 0..<60 {
            let hits = live.service.metrics.prestartCounts(language).hits
            let r = try await live.run(language, c.code, stdin: c.stdin, args: c.args)
            if live.service.metrics.prestartCounts(language).hits > hits { return r }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTFail("no run of \(language) found its interpreter waiting")
        throw CancellationError()
    }

    static func warmRun(_ live: LiveService, _ language: String, _ code: String) async throws -> RunResult {
        try await warmRun(live, language, Case(code: code))
    }

    /// A service whose `language` starts each interpreter the exec way, without its zygote.
    static func withoutZygote(_ language: String) async throws -> LiveService {
        try await LiveService(pool: 2, name: "cold-exec") { c in  // "cold": uids of its own (testConfig)
            for i in c.languages.indices where c.languages[i].name == language { c.languages[i].zygote = false }
        }
    }

    /// Runs each case through the zygote and the exec way and compares the results whole.
    static func compare(_ language: String, _ cases: [Case]) async throws {
        let forked = try await LiveService(pool: 2, name: "fork")
        defer { forked.shutdown() }
        let exec = try await withoutZygote(language)
        defer { exec.shutdown() }
        await forked.waitUntilReady()
        await exec.waitUntilReady()
        for c in cases {
            let a = try await warmRun(forked, language, c)
            let b = try await warmRun(exec, language, c)
            let what = "\(language): \(c.code)"
            XCTAssertEqual(a.status, b.status, what)
            XCTAssertEqual(a.exitCode, b.exitCode, what)
            XCTAssertEqual(a.stdout, b.stdout, what)
            XCTAssertEqual(a.stderr, b.stderr, what)
        }
        XCTAssertTrue(forked.backend.zygotes.contains { $0.language == language }, "\(language)'s zygote served the runs")
        XCTAssertFalse(exec.backend.zygotes.contains { $0.language == language }, "no \(language) zygote with zygote = false")
    }

    /// Values of `code` (one line, words) from `runs` runs through the zygote: each word position's
    /// set of values, to find what repeats between runs.
    static func distinctWords(_ language: String, _ code: String, runs: Int) async throws -> [Set<String>] {
        let live = try await LiveService(pool: 2, name: "rand")
        defer { live.shutdown() }
        await live.waitUntilReady()
        var seen: [Set<String>] = []
        for _ in 0..<runs {
            let r = try await warmRun(live, language, code)
            XCTAssertEqual(r.status, .ok, r.stderr)
            let words = r.stdout.split(separator: " ").map(String.init)
            if seen.isEmpty { seen = Array(repeating: [], count: words.count) }
            XCTAssertEqual(words.count, seen.count, r.stdout)
            for (i, w) in words.enumerated() where i < seen.count { seen[i].insert(w) }
        }
        XCTAssertTrue(live.backend.zygotes.contains { $0.language == language }, "the runs were forks of \(language)'s zygote")
        return seen
    }

    /// Two runs on one slot: what the first sets (globals, environment, a file, a definition) must
    /// not be seen by the second; then the zygote is killed and runs go on, the plain way.
    static func checkIsolationAndLoss(_ language: String, set: String, check: String, expected: String) async throws {
        let live = try await LiveService(pool: 1, name: "iso")
        defer { live.shutdown() }
        await live.waitUntilReady()
        let first = try await warmRun(live, language, set)
        XCTAssertEqual(first.stdout, "set\n", first.stderr)
        let second = try await warmRun(live, language, check)
        XCTAssertEqual(second.stdout, expected, second.stderr)
        let zygote = try XCTUnwrap(live.backend.zygotes.first { $0.language == language }?.pid)
        kill(zygote, SIGKILL)
        for i in 0..<4 {
            let r = try await live.run(language, check)
            XCTAssertEqual(r.stdout, expected, "run \(i) after the zygote was killed: \(r.stderr)")
        }
        XCTAssertFalse(live.backend.zygotes.contains { $0.pid == zygote }, "the killed zygote was dropped")
    }
}
