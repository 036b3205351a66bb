import CodesandCore
import CodesandProtocol
import Foundation
import XCTest

/// Pre-started interpreters must behave as `interpreter main.ext args` would. Each snippet runs on
/// a pool whose slots wait with the interpreter started, and on a pool without pre-starting; the
/// results must match except for the differences documented in the README.
final class PrestartTests: XCTestCase {
    struct Case {
        var code: String
        var args: [String] = []
        var stdin: String = ""
    }

    static let cases: [String: [Case]] = [
        "python3": [
            Case(code: "import sys, os; print(__name__, __file__, sys.argv, sys.path[0], os.getcwd())", args: ["x y", "z"]),
            Case(code: "print(input()[::-1]); import sys; print(repr(sys.stdin.read()))", stdin: "abc\nrest\n"),
            Case(code: "import sys; print('out'); sys.exit(7)"),
            Case(code: "raise SystemExit('bye')"),
            Case(code: "def f():\n    raise KeyError('k')\nf()"),
            Case(code: "print(\n"),
            Case(code: "import warnings; warnings.warn('careful')"),
            Case(code: "if __name__ == '__main__':\n    print('main')"),
            Case(code: "import multiprocessing as mp\ndef sq(x): return x*x\nif __name__ == '__main__':\n    with mp.Pool(2) as p: print(p.map(sq, [1, 2, 3]))"),
            Case(code: "'''doc'''\nprint(__doc__, __spec__, __package__)"),
            // A zygote's fork: the dispositions, flags, environment and clock of a fresh start.
            Case(code: "import signal as s; print([s.getsignal(n) for n in (s.SIGINT, s.SIGPIPE, s.SIGXFSZ, s.SIGSEGV, s.SIGTERM, s.SIGCHLD)])"),
            Case(code: "import sys, os, time, threading; print(sys.flags, sys.executable, sorted(os.environ), time.tzname, threading.active_count())"),
            Case(code: "import os, resource; print(os.getppid(), os.getpgrp() == os.getpid(), resource.getrlimit(resource.RLIMIT_NOFILE), os.umask(0))"),
            Case(code: "import sys\nprint([f.seekable() for f in (sys.stdin, sys.stdout, sys.stderr)])\ntry:\n    sys.stdin.tell()\nexcept Exception as e:\n    print(type(e).__name__)"),
            Case(code: "print([l.split()[1] for l in open('/proc/self/status') if l.startswith(('SigIgn', 'SigCgt', 'SigBlk'))])"),
            Case(code: "import os; print(len(open('/proc/self/environ', 'rb').read()) > 0, os.stat('/proc/self/fd').st_uid == os.getuid())"),
            Case(code: "import signal, threading, time\nsignal.signal(signal.SIGUSR1, lambda *a: print('got'))\nt = threading.Thread(target=lambda: signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1))\nt.start(); t.join(); time.sleep(0.05); print('done')"),
        ],
        "php": [
            Case(code: "echo $argv[1], ' ', $argc, ' ', __FILE__, ' ', $_SERVER['argv'][0], \"\\n\";", args: ["a b"]),
            Case(code: "echo strtoupper(fgets(STDIN));", stdin: "hi\n"),
            Case(code: "fwrite(STDERR, \"e\\n\"); exit(3);"),
            Case(code: "<?php\necho 1 +;"),
        ],
        "javascript": [
            Case(code: "console.log(require.main === module, __filename, __dirname, process.argv.slice(1))", args: ["a b"]),
            Case(code: "let d = ''; process.stdin.on('data', c => d += c).on('end', () => console.log(d.toUpperCase()))", stdin: "hi\n"),
            Case(code: "console.error('e'); process.exit(3)"),
            Case(code: "let x = ;"),
            // The launcher is node's main script too: what a program sees of its start is a plain run's,
            // and so are the frames of a stack trace up to the program's entry point.
            Case(code: "console.log(process.execArgv, Object.keys(require.cache), typeof codesandArgv, module.id, module.parent)\n"
                 + "console.log(require('fs').readdirSync('/proc/self/fd').length)\n"
                 + "console.log(new Error('x').stack.split('\\n').slice(0, 6).join('\\n'))"),
            Case(code: "process.on('exit', c => console.log('exit', c)); process.exitCode = 3; throw new Error('boom')"),
        ],
        "ruby": [
            Case(code: "puts $0, __FILE__ == $0, ARGV.inspect", args: ["a", "b c"]),
            Case(code: "puts STDIN.read.upcase", stdin: "hi\n"),
            Case(code: "STDERR.puts 'e'; exit 5"),
            Case(code: "def x(; end"),
        ],
    ]

    func runAll(prestart: Bool) async throws -> [String: [RunResult]] {
        let live = try await LiveService(pool: 2) { c in
            if !prestart { for i in c.languages.indices { c.languages[i].prestart = [] } }
        }
        defer { live.shutdown() }
        await live.waitUntilReady()
        var out: [String: [RunResult]] = [:]
        for (lang, cases) in Self.cases.sorted(by: { $0.key < $1.key }) {
            for c in cases {
                // With pre-starting, keep the result of a run that found its interpreter waiting (the
                // pool follows demand: the first runs of a language teach it to start that one).
                var r = try await live.run(lang, c.code, stdin: c.stdin, args: c.args)
                for _ in 0..<40 where prestart {
                    let hits = live.service.metrics.prestartCounts(lang).hits
                    try await Task.sleep(for: .milliseconds(50))
                    r = try await live.run(lang, c.code, stdin: c.stdin, args: c.args)
                    if live.service.metrics.prestartCounts(lang).hits > hits { break }
                }
                out[lang, default: []].append(r)
            }
            let counts = live.service.metrics.prestartCounts(lang)
            if prestart {
                XCTAssertGreaterThanOrEqual(counts.hits, Int64(cases.count), "\(lang): every compared run was pre-started: \(counts)")
            } else {
                XCTAssertEqual(counts.hits, 0, lang)
            }
        }
        return out
    }

    /// What a pre-started run may print differently (README, "Pre-started interpreters"): the
    /// launcher's frames in Ruby, Node and PHP stack traces, and Ruby's " (SyntaxError)" suffix.
    /// (Ruby's `load` is on the last line of launchers/ruby.rb, which it runs as `-e` code.)
    static func normalize(_ s: String, _ lang: String) -> String {
        var lines = s.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        switch lang {
        case "ruby":
            lines.removeAll { $0.contains("from -e:") }
            lines = lines.map {
                $0.replacingOccurrences(of: "-e:[0-9]+:in `load': ", with: "", options: .regularExpression)
                    .replacingOccurrences(of: " (SyntaxError)", with: "")
            }
        // The frames below the program's entry point: node's own, and the launcher's (its main script).
        case "javascript": lines.removeAll { $0.contains("node:internal") || $0.contains("(/proc/self/fd/5:") }
        case "php": lines.removeAll { $0.contains("Command line code") || $0.hasPrefix("#") }
        default: break
        }
        return lines.joined(separator: "\n")
    }

    func test_prestarted_runs_behave_as_plain_runs() async throws {
        try requireRoot()
        let warm = try await runAll(prestart: true)
        let plain = try await runAll(prestart: false)
        for (lang, cases) in Self.cases {
            for i in cases.indices {
                let (a, b) = (warm[lang]![i], plain[lang]![i])
                let what = "\(lang) case \(i): \(cases[i].code)"
                XCTAssertEqual(a.status, b.status, what)
                XCTAssertEqual(a.exitCode, b.exitCode, what)
                XCTAssertEqual(a.stdout, b.stdout, what)
                XCTAssertEqual(Self.normalize(a.stderr, lang), Self.normalize(b.stderr, lang), what)
            }
        }
    }

    func test_cpu_and_wall_time_count_the_run_not_the_interpreters_start() async throws {
        try requireRoot()
        let warm = try await LiveService(pool: 1)
        defer { warm.shutdown() }
        let cold = try await LiveService(pool: 1, name: "cold") { c in for i in c.languages.indices { c.languages[i].prestart = [] } }
        defer { cold.shutdown() }
        await warm.waitUntilReady()
        await cold.waitUntilReady()
        var warmCPU: [Int64] = [], coldCPU: [Int64] = [], warmWall: [Int64] = [], coldWall: [Int64] = []
        for _ in 0..<5 {
            try await Task.sleep(for: .milliseconds(150))  // the interpreter is up and waiting again
            let w = try await warm.run("python3", "import json")
            let c = try await cold.run("python3", "import json")
            warmCPU.append(w.cpuMs); coldCPU.append(c.cpuMs); warmWall.append(w.wallMs); coldWall.append(c.wallMs)
        }
        XCTAssertEqual(warm.service.metrics.prestartCounts("python3").hits, 5)
        XCTAssertLessThan(warmCPU.sorted()[2], coldCPU.sorted()[2], "the start-up is not the run's: \(warmCPU) vs \(coldCPU)")
        XCTAssertLessThan(warmWall.sorted()[2], coldWall.sorted()[2], "\(warmWall) vs \(coldWall)")
    }

    /// A slot prepared for a language is made with that language's limits (javascript's pids: 128,
    /// not the daemon's default), so its runs with their defaults write no cgroup file first.
    func test_a_slot_prepared_for_a_language_has_its_limits() async throws {
        try requireRoot()
        let live = try await LiveService(pool: 1)
        defer { live.shutdown() }
        let js = try XCTUnwrap(live.config.languages.first { $0.name == "javascript" })
        let pids = try XCTUnwrap(js.limits?.pids)
        XCTAssertNotEqual(pids, live.config.defaultLimits.pids, "the test needs a language whose pids limit is its own")
        let warm = try await ZygoteTests.warmRun(live, "console.log(1)", language: "javascript")
        XCTAssertEqual(warm.stdout, "1\n", warm.stderr)
        await live.waitUntilReady()
        try await Task.sleep(for: .milliseconds(200))
        let name = live.config.sandbox.cgroupName
        let file = ["/sys/fs/cgroup/pids/\(name)/slot-0/pids.max", "/sys/fs/cgroup/\(name)/slot-0/pids.max"]
            .first { FileManager.default.fileExists(atPath: $0) }
        let held = try String(contentsOfFile: try XCTUnwrap(file), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(live.service.metrics.prestartCounts("javascript").hits > 0, true)
        XCTAssertEqual(held, "\(pids)", "the slot waits for javascript with javascript's limits")
    }

    func test_prestart_false_runs_the_plain_way() async throws {
        try requireRoot()
        let live = try await LiveService(pool: 1)
        defer { live.shutdown() }
        await live.waitUntilReady()
        try await Task.sleep(for: .milliseconds(300))
        let r = try await live.service.run(RunParams(language: "python3", code: "import sys; print(sys.orig_argv[1])", prestart: false),
                                           peer: PeerInfo(pid: 0, uid: 0, gid: 0))
        XCTAssertEqual(r.stdout, "/home/sandbox/main.py\n", "python3 main.py, not the launcher")
        XCTAssertEqual(live.service.metrics.prestartCounts("python3").hits, 0)
    }

    func test_a_prestarted_slot_serves_another_language_the_plain_way() async throws {
        try requireRoot()
        let live = try await LiveService(pool: 1)
        defer { live.shutdown() }
        await live.waitUntilReady()
        // (A pipeline's processes may still show as bash before their exec: only what is there matters.)
        let r = try await live.run("bash", "echo plain; ps -e -o comm= | sort -u | tr '\\n' ' '")
        XCTAssertTrue(r.stdout.hasPrefix("plain\n"), r.stdout)
        XCTAssertTrue(r.stdout.contains("codesand-init"), r.stdout)
        XCTAssertFalse(r.stdout.contains("python"), "the waiting python3 was stopped first: \(r.stdout)")
    }
}
