import CodesandCore
import Foundation
import XCTest

@testable import CodesandLinux

/// ruby's pre-started interpreters are forks of a zygote (launchers/ruby.rb): a fork must behave
/// as the interpreter exec'd for its sandbox would, see ZygoteFidelity.
final class RubyZygoteTests: XCTestCase {
    typealias Case = ZygoteFidelity.Case

    static let cases: [Case] = [
        Case(code: "puts $0, __FILE__, $PROGRAM_NAME, ARGV.inspect, __dir__", args: ["a", "b c"]),
        Case(code: "def f = raise(ArgumentError, 'boom')\nf"),
        Case(code: "x_value = 1\np x_valeu"),  // did_you_mean and error_highlight, loaded at start
        Case(code: "puts 'out'; exit 7"),
        Case(code: "abort 'bye'"),
        Case(code: "at_exit { puts 'last' }\nputs 'first'"),
        Case(code: "p STDIN.gets, $stdin.read, $stdin.eof?", stdin: "line\nrest\n"),
        Case(code: "p ENV.to_h.sort, Dir.pwd, Process.pid, Process.ppid, Process.uid == File.stat(Dir.pwd).uid, Process.uid > 0, File.umask"),
        Case(code: "warn 'careful'\nX = 1\nX = 2\n$stderr.puts 'e'"),
        Case(code: "print 'no newline'\n$stderr.print 'err'\nexit 3"),
        Case(code: "p Encoding.default_external, Encoding.default_internal, __ENCODING__, Time.now.zone, $stdout.sync, $stdout.tty?"),
        Case(code: "p Thread.list.size, Thread.main == Thread.current, Process.getpgrp == Process.pid, Process.getrlimit(:NOFILE)"),
        Case(code: "p %w[INT PIPE TERM CHLD HUP USR1 ALRM].map { |s| [s, trap(s, 'DEFAULT')] }"),
        Case(code: "puts File.readlines('/proc/self/status').grep(/^Sig(Ign|Cgt|Blk)/)"),
        // Ruby's timer (wake-ups, signals, child processes, threads): restarted in the fork.
        Case(code: """
            t = Thread.new { sleep 0.05; 42 }
            r, w = IO.pipe
            trap('USR1') { w.write 'x' }
            Process.kill('USR1', $$)
            p t.value, r.read(1), system('true'), $?.exitstatus, `echo hi`, Thread.new { Thread.pass; 1 }.value
            q = Queue.new
            Thread.new { sleep 0.02; q << :woken }
            p q.pop
            """),
        Case(code: "require 'timeout'\np((Timeout.timeout(0.05) { sleep 1 } rescue $!.class))"),
        Case(code: "p defined?(Gem), defined?(DidYouMean), defined?(ErrorHighlight), defined?(JSON), defined?(SecureRandom)"),
        Case(code: "p $LOADED_FEATURES.reject { |f| f.include?('fiddle') }.size, $LOAD_PATH"),
        Case(code: "p ObjectSpace.count_objects.keys.size, GC.count.class, Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) < 1"),
        // Open fds: stdio, Ruby's own wake-up fds (the fork's, made anew), nothing of the zygote's.
        Case(code: "p Dir.children('/proc/self/fd').sort_by(&:to_i).map { |f| [f, (File.readlink(\"/proc/self/fd/#{f}\") rescue 'gone').sub(/[0-9]+/, 'N')] }"),
        Case(code: "exit!(4)"),
    ]

    func test_runs_through_the_zygote_behave_as_exec_ed_ones() async throws {
        try requireRoot()
        try await ZygoteFidelity.compare("ruby", Self.cases)
    }

    /// A fork of the zygote: Fiddle, which only the zygote requires, is loaded; its name is the
    /// interpreter's, and no host path (the launcher text, the library) is in its command line.
    func test_ruby_interpreters_are_forks_of_the_zygote() async throws {
        try requireRoot()
        let live = try await LiveService(pool: 2)
        defer { live.shutdown() }
        await live.waitUntilReady()
        let r = try await ZygoteFidelity.warmRun(live, "ruby", """
            p defined?(Fiddle), $$, File.read('/proc/self/comm').strip
            cmdline = File.read('/proc/self/cmdline')
            p cmdline.include?('Codesand'), cmdline.include?('ARGV'), cmdline.tr("\\0", ' ').strip
            """)
        XCTAssertEqual(r.stdout, "\"constant\"\n2\n\"ruby\"\nfalse\nfalse\n\"/home/sandbox/main.rb\"\n", r.stderr)
        XCTAssertTrue(live.backend.zygotes.contains { $0.language == "ruby" })
    }

    func test_each_fork_has_its_own_random_state() async throws {
        try requireRoot()
        let seen = try await ZygoteFidelity.distinctWords("ruby", """
            require 'securerandom'
            puts [rand(2**62), Random.rand, Random.new.rand(2**62), (1..30).to_a.shuffle.join(','), SecureRandom.hex(8), Random.bytes(8).unpack1('H*'), [1, 2, 3].sample(random: Random.new)].join(' ')
            """, runs: 4)
        // The sample of three is the one that may repeat by chance.
        XCTAssertEqual(seen.prefix(6).map(\.count), [4, 4, 4, 4, 4, 4], "rand, Random.rand, Random.new, shuffle, SecureRandom, Random.bytes: \(seen)")
    }

    /// Forking from C copies only the calling thread: with another thread alive (which could hold
    /// a lock), the zygote refuses to serve, and says why; the same launcher alone serves.
    func test_the_zygote_refuses_to_serve_with_another_thread_alive() throws {
        try requireRoot()
        let config = try testConfig(pool: 1, name: "-rbthreads")
        let ruby = try XCTUnwrap(config.languages.first { $0.name == "ruby" })
        let library = try XCTUnwrap(ZygoteSet.findLibrary(config: config.sandbox, logger: testLogger))
        let spec = try XCTUnwrap(Launchers(config: config.sandbox, logger: testLogger)
            .resolve(PrestartSpec(language: "ruby", argv: ruby.prestart, env: ["PATH=/usr/bin:/bin"], zygote: true, launcher: ruby.launcher)))
        let alone = try Zygote.start(spec, arguments: [library])
        alone.stop()
        var threaded = spec
        threaded.argv = spec.argv.map { $0.hasPrefix("# codesand's pre-start launcher") ? "Thread.new { sleep }\n" + $0 : $0 }
        XCTAssertNotEqual(threaded.argv, spec.argv)
        XCTAssertThrowsError(try Zygote.start(threaded, arguments: [library])) { error in
            XCTAssertTrue("\(error)".contains("[2, 2] Ruby and native threads, not serving"), "\(error)")
        }
    }

    func test_a_run_leaves_nothing_to_the_next_and_a_killed_zygote_costs_no_run() async throws {
        try requireRoot()
        try await ZygoteFidelity.checkIsolationAndLoss(
            "ruby",
            set: "$mark = 1; ENV['MARK'] = '1'; class String; def marked; end; end; File.write('/tmp/mark', 'x'); puts 'set'",
            check: "p [$mark, ENV['MARK'], ''.respond_to?(:marked), File.exist?('/tmp/mark')]",
            expected: "[nil, nil, false, false]\n")
    }
}
