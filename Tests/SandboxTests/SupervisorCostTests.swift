import CodesandCore
import CodesandProtocol
import Glibc
import XCTest

/// What supervising a run costs the daemon itself: its CPU time is outside every sandbox's cgroup,
/// so a supervisor that spins while a program waits steals a core that no limit counts.
final class SupervisorCostTests: LiveServiceTestCase {
    override var poolSize: Int { 1 }

    /// This process's CPU time (user + system, all threads): the LiveService is the daemon here.
    static func ownCPUMs() -> Int64 {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let us = (Int64(usage.ru_utime.tv_sec) + Int64(usage.ru_stime.tv_sec)) * 1_000_000
            + Int64(usage.ru_utime.tv_usec) + Int64(usage.ru_stime.tv_usec)
        return us / 1000
    }

    /// The run stage of a compiled program once spun at 100% (a report pipe's EOF read as "try
    /// again" through a stale errno): a program that sleeps 2 s cost the daemon 2 s of CPU.
    func test_a_sleeping_compiled_program_costs_the_daemon_no_cpu() async throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/gcc"), "needs gcc (scripts/install-deps)")
        let warm = try await live.run("gcc", "int main(void) { return 0; }")
        XCTAssertEqual(warm.status, .ok, "\(warm)")
        await live.waitUntilReady()
        let before = Self.ownCPUMs()
        let r = try await live.run("gcc", "#include <unistd.h>\n#include <stdio.h>\nint main(void) { sleep(2); puts(\"done\"); return 0; }",
                                   limits: RunLimits(wallMs: 8000))
        let spent = Self.ownCPUMs() - before
        XCTAssertEqual(r.stdout, "done\n", "\(r)")
        XCTAssertGreaterThanOrEqual(r.wallMs, 2000, "\(r)")
        XCTAssertLessThan(spent, 100, "the daemon used \(spent) ms of CPU while the program slept 2 s")
    }

    /// The socket sample (SocketQueues, every 50 ms) read /proc/<init>/net/tcp and tcp6 for every
    /// run: the kernel walks the host's whole TCP hash table for them, 13% of a core per sandbox.
    func test_a_sleeping_program_without_sockets_costs_the_daemon_no_cpu() async throws {
        let before = Self.ownCPUMs()
        let r = try await live.run("python3", "import time; time.sleep(2); print('done')", limits: RunLimits(wallMs: 8000))
        let spent = Self.ownCPUMs() - before
        XCTAssertEqual(r.stdout, "done\n", "\(r)")
        XCTAssertLessThan(spent, 100, "the daemon used \(spent) ms of CPU while the program slept 2 s")
    }
}
