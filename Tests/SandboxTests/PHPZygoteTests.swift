import CodesandCore
import CodesandProtocol
import Foundation
import XCTest

/// php's pre-started interpreters are forks of a zygote (launchers/php.php): a fork must behave
/// as the interpreter exec'd for its sandbox would, see ZygoteFidelity.
final class PHPZygoteTests: XCTestCase {
    typealias Case = ZygoteFidelity.Case

    static let cases: [Case] = [
        Case(code: "echo implode('|', $argv), ' ', $argc, ' ', __FILE__, ' ', __DIR__, ' ', implode('|', $_SERVER['argv']), ' ', $_SERVER['argc'], ' ', $_SERVER['SCRIPT_FILENAME'], \"\\n\";",
             args: ["a b", "c"]),
        Case(code: "function f() { throw new RuntimeException('boom'); }\nf();"),
        Case(code: "echo 'out'; exit(7);"),
        Case(code: "exit('bye');"),
        Case(code: "register_shutdown_function(function () { echo \"last\\n\"; });\necho \"first\\n\";"),
        Case(code: "var_dump(fgets(STDIN), stream_get_contents(STDIN), feof(STDIN));", stdin: "line\nrest\n"),
        Case(code: "$e = getenv(); ksort($e); var_dump($e, $_ENV, getcwd(), getmypid(), posix_getpid(), posix_getppid(), posix_getuid() === fileowner(getcwd()), posix_getuid() > 0, umask());"),
        Case(code: "echo $undefined;\ntrigger_error('careful', E_USER_WARNING);\nfwrite(STDERR, \"e\\n\");\necho \"after\\n\";"),
        Case(code: "echo 'no newline'; fwrite(STDERR, 'err'); exit(3);"),
        Case(code: "ob_start(); echo 'buffered'; exit(2);"),
        Case(code: "var_dump(date_default_timezone_get(), PHP_SAPI, ini_get('display_errors'), ini_get('memory_limit'), ini_get('max_execution_time'), ob_get_level());"),
        Case(code: "var_dump(array_keys($GLOBALS), array_keys($_SERVER), get_included_files(), count(get_defined_functions()['user']), get_declared_classes() === array_values(array_filter(get_declared_classes(), fn($c) => !(new ReflectionClass($c))->isUserDefined())));"),
        Case(code: "echo implode('', preg_grep('/^Sig(Ign|Cgt|Blk)/', file('/proc/self/status')));"),
        Case(code: "pcntl_async_signals(true);\npcntl_signal(SIGUSR1, function () { echo \"got\\n\"; });\nposix_kill(posix_getpid(), SIGUSR1);\nvar_dump(shell_exec('echo hi'), pcntl_signal_get_handler(SIGTERM));"),
        Case(code: "$p = pcntl_fork(); if ($p === 0) { echo \"child\\n\"; exit(0); } pcntl_waitpid($p, $st); var_dump(pcntl_wexitstatus($st));"),
        Case(code: "foreach (scandir('/proc/self/fd') as $f) { echo $f, ' ', preg_replace('/[0-9]+/', 'N', (string)@readlink(\"/proc/self/fd/$f\")), \"\\n\"; }"),
        Case(code: "<?php\necho 1 +;"),
    ]

    func test_runs_through_the_zygote_behave_as_exec_ed_ones() async throws {
        try requireRoot()
        try await ZygoteFidelity.compare("php", Self.cases)
    }

    /// A fork of the zygote: its auxiliary vector (/proc/self/auxv: the stack and vDSO addresses
    /// of its exec, randomised per exec) is the zygote's, an exec'd php's is its own; its name is
    /// the interpreter's, and no host path is in its command line.
    func test_php_interpreters_are_forks_of_the_zygote() async throws {
        try requireRoot()
        let forked = try await LiveService(pool: 2, name: "fork")
        defer { forked.shutdown() }
        let exec = try await ZygoteFidelity.withoutZygote("php")
        defer { exec.shutdown() }
        await forked.waitUntilReady()
        await exec.waitUntilReady()
        let code = """
            $cmdline = file_get_contents('/proc/self/cmdline');
            var_dump(getmypid(), trim(file_get_contents('/proc/self/comm')), str_contains($cmdline, 'Codesand'), str_contains($cmdline, 'argv'),
                     str_replace("\\0", ' ', trim($cmdline, "\\0")), str_contains(file_get_contents('/proc/self/maps'), 'libCodesandZygote'));
            echo bin2hex(file_get_contents('/proc/self/auxv'));
            """
        let a = try await ZygoteFidelity.warmRun(forked, "php", code)
        let b = try await ZygoteFidelity.warmRun(exec, "php", code)
        let expected = "int(2)\nstring(3) \"php\"\nbool(false)\nbool(false)\nstring(3) \"php\"\nbool(false)\n"
        XCTAssertTrue(a.stdout.hasPrefix(expected), a.stdout + a.stderr)
        let zygote = try XCTUnwrap(forked.backend.zygotes.first { $0.language == "php" }?.pid)
        let zygoteAuxv = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(zygote)/auxv")).map { String(format: "%02x", $0) }.joined()
        let auxv = { (r: RunResult) in String(r.stdout.split(separator: "\n").last ?? "") }
        XCTAssertFalse(zygoteAuxv.isEmpty)
        XCTAssertEqual(auxv(a), zygoteAuxv, "the run's interpreter is a fork of the zygote")
        XCTAssertNotEqual(auxv(b), zygoteAuxv, "an exec'd interpreter has its own")
    }

    /// php seeds mt_rand (and rand, shuffle, str_shuffle, array_rand) and lcg_value lazily: each
    /// fork must draw its own seed, never one the zygote drew.
    func test_each_fork_has_its_own_random_state() async throws {
        try requireRoot()
        let seen = try await ZygoteFidelity.distinctWords("php", """
            $a = range(1, 30); shuffle($a);
            echo implode(' ', [mt_rand(), rand(), random_int(0, PHP_INT_MAX), bin2hex(random_bytes(8)), lcg_value(), uniqid('', true),
                               implode(',', $a), str_shuffle('abcdefghijklmnopqrstuvwxyz'), array_rand(range(0, 100000)),
                               session_create_id(), (new Random\\Randomizer())->getInt(0, PHP_INT_MAX), mt_rand(1, 3)]);
            """, runs: 4)
        // The last (1 to 3) is the one that may repeat by chance.
        XCTAssertEqual(seen.prefix(11).map(\.count), Array(repeating: 4, count: 11),
                       "mt_rand, rand, random_int, random_bytes, lcg_value, uniqid, shuffle, str_shuffle, array_rand, session id, Randomizer: \(seen)")
    }

    func test_a_run_leaves_nothing_to_the_next_and_a_killed_zygote_costs_no_run() async throws {
        try requireRoot()
        try await ZygoteFidelity.checkIsolationAndLoss(
            "php",
            set: "$GLOBALS['mark'] = 1; putenv('MARK=1'); define('MARK', 1); file_put_contents('/tmp/mark', 'x'); function marked() {} echo \"set\\n\";",
            check: "echo json_encode([isset($mark), getenv('MARK'), defined('MARK'), file_exists('/tmp/mark'), function_exists('marked')]), \"\\n\";",
            expected: "[false,false,false,false,false]\n")
    }
}
