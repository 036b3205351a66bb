import CodesandCore
import Foundation
import XCTest

@testable import CodesandLinux

/// bash's pre-started interpreters are forks of a zygote (launchers/bash.sh, bash_zygote.c) that
/// then read the snippet as `bash main.sh args` does: a run through it must give what a plain run
/// gives. (With `zygote = false` bash starts nothing in advance: its launcher runs only as a zygote.)
final class BashZygoteTests: XCTestCase {
    typealias Case = ZygoteFidelity.Case

    /// Each service's sandboxes have uids of their own: compared as relations, not numbers.
    static let cases: [Case] = [
        Case(code: "echo \"0=$0 _=$_ #=$# @=$* -=$- src=${BASH_SOURCE[*]} fn=${FUNCNAME[*]-} bl=${BASH_LINENO[*]} $LINENO\"",
             args: ["a", "b c"]),
        Case(code: "f() {\n  echo \"${FUNCNAME[*]} ${BASH_SOURCE[*]} ${BASH_LINENO[*]} $LINENO\"\n}\n\nf"),
        // After a first command: before any, a plain bash has no PIPESTATUS yet (a documented difference).
        Case(code: ":; declare -p | grep -vE '^declare -[-a-zA-Z]+ (BASHPID|RANDOM|SRANDOM|EPOCHREALTIME|EPOCHSECONDS|SECONDS|BASH_COMMAND|UID|EUID|_)='",
             args: ["x"]),
        Case(code: "echo \"${BASH_ARGV[*]} ${BASH_ARGC[*]}\"; set -- p q; echo $#", args: ["a", "b"]),
        Case(code: "shopt -p; set -o; trap -p; enable -a; ulimit -a | grep -v 'cpu time'; umask; echo $SECONDS $((RANDOM != RANDOM)) $-"),
        Case(code: "ls /proc/$$/fd/; readlink /proc/$$/fd/255; echo $(( $$ == BASHPID )) $PPID"),
        Case(code: "echo $(( UID == $(id -u) && EUID == $(id -u) )); id -un; hostname; echo \"$SHELL $HOSTNAME $PWD [$OLDPWD]\"; cd /tmp; cd -; echo ~"),
        Case(code: "read -r line; echo \"stdin: $line\"; cat", stdin: "hello\nrest\n"),
        Case(code: "type codesand_zygote; echo $?\nfoo\nreturn\n( exit 3 ); echo sub $?\necho \"$BASH_ENV\"\nif then"),
        Case(code: "echo out; echo err >&2; exit 7"),
        Case(code: "trap 'echo trapped' EXIT; kill -s TERM $$; echo after"),
        Case(code: "sleep 0.1 & wait $!; echo $? ${!:+set}; jobs; echo ${PIPESTATUS[*]}; echo ${GROUPS[*]/#*/g}"),
        Case(code: "env | sort; echo $SHLVL; bash -c 'echo $SHLVL $0 $_'"),
        Case(code: "grep -E '^Sig(Ign|Cgt|Blk)' /proc/$$/status; ps -o pgid= -o sid= -p $$ | tr -s ' '; echo $(( $(ps -o pgid= -p $$) == $$ ))"),
        Case(code: "exec 3>/tmp/f; echo hi >&3; cat /tmp/f; echo \"$(< /tmp/f)\"; printf '%s\\n' *"),
        Case(code: "set -e; false; echo not reached"),
    ]

    func test_runs_through_the_zygote_behave_as_plain_ones() async throws {
        try requireRoot()
        let forked = try await LiveService(pool: 2, name: "bashfork")
        defer { forked.shutdown() }
        let plain = try await ZygoteFidelity.withoutZygote("bash")
        defer { plain.shutdown() }
        await forked.waitUntilReady()
        await plain.waitUntilReady()
        for c in Self.cases {
            let a = try await ZygoteFidelity.warmRun(forked, "bash", c)
            let b = try await plain.run("bash", c.code, stdin: c.stdin, args: c.args)
            let what = "bash: \(c.code)"
            XCTAssertEqual(a.status, b.status, what)
            XCTAssertEqual(a.exitCode, b.exitCode, what)
            XCTAssertEqual(a.stdout, b.stdout, what)
            XCTAssertEqual(a.stderr, b.stderr, what)
        }
        XCTAssertTrue(forked.backend.zygotes.contains { $0.language == "bash" }, "bash's zygote served the runs")
        XCTAssertFalse(plain.backend.zygotes.contains { $0.language == "bash" }, "no bash zygote with zygote = false")
        XCTAssertEqual(plain.service.metrics.prestartCounts("bash").hits, 0, "without its zygote, bash runs the plain way")
    }

    /// A fork of the zygote: the library is mapped, its builtin gone. What differs from a plain run
    /// (README, "Zygotes"): the command line is the interpreter's name; the environment block still
    /// holds BASH_ENV=/dev/stdin (no host path shows); PIPESTATUS is set before the first command;
    /// RLIMIT_CPU is the daemon's largest (the run's limit is its cgroup's, as for every
    /// pre-started interpreter).
    func test_bash_interpreters_are_forks_of_the_zygote() async throws {
        try requireRoot()
        let live = try await LiveService(pool: 2)
        defer { live.shutdown() }
        await live.waitUntilReady()
        let r = try await ZygoteFidelity.warmRun(live, "bash", """
            echo "${PIPESTATUS[*]}"; grep -q libCodesandZygote /proc/$$/maps && echo mapped; enable -a | grep -c codesand
            tr '\\0' ' ' < /proc/$$/cmdline; echo; tr '\\0' '\\n' < /proc/$$/environ | grep BASH_ENV
            cat /proc/$$/cmdline /proc/$$/environ | grep -c -e odesand -e launchers -e '\\.so' -e '\\.build'
            """)
        XCTAssertEqual(r.stdout, "0\nmapped\n0\nbash \nBASH_ENV=/dev/stdin\n0\n", r.stderr)
        XCTAssertTrue(live.backend.zygotes.contains { $0.language == "bash" })
    }

    func test_each_fork_has_its_own_random_state() async throws {
        try requireRoot()
        let seen = try await ZygoteFidelity.distinctWords("bash", "echo $RANDOM$RANDOM $SRANDOM $(( $(date +%s%N) / 1000 ))", runs: 4)
        XCTAssertEqual(seen.map(\.count), [4, 4, 4], "RANDOM, SRANDOM, the time: \(seen)")
    }

    func test_a_run_leaves_nothing_to_the_next_and_a_killed_zygote_costs_no_run() async throws {
        try requireRoot()
        try await ZygoteFidelity.checkIsolationAndLoss(
            "bash",
            set: "export MARK=1; f() { :; }; alias g=true; echo x > /tmp/mark; echo set",
            check: "echo \"[${MARK-}] [$(type -t f)] [$(alias g 2>/dev/null)] [$([ -e /tmp/mark ] && echo y)]\"",
            expected: "[] [] [] []\n")
    }
}
