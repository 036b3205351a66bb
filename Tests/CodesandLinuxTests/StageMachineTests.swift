import CodesandCore
import CodesandProtocol
import Glibc
import XCTest

@testable import CodesandLinux

/// Time that moves only when a test says so.
final class ManualClock: RunClock, @unchecked Sendable {  // used by one test's thread
    var ns: UInt64 = 1_000_000_000
    func now() -> UInt64 { ns }
    func advance(ms: UInt64) { ns += ms * 1_000_000 }
}

/// The stage state machine's timing and ordering, event by event on a manual clock: what the
/// real supervisor (StageSupervisor) would do is what each answer says.
final class StageMachineTests: XCTestCase {
    typealias Machine = StageMachine
    let clock = ManualClock()
    static let limits = LimitSet(wallMs: 1000, cpuMs: 800, memoryBytes: 64 << 20, pids: 16, outputBytes: 10, outputLines: 100)
    static let allOpen: Set<Machine.Pipe> = [.report, .stdout, .stderr, .status, .stdin]
    static let exitedZero: Int32 = 0
    static let killedBySIGKILL: Int32 = SIGKILL

    func machine(_ stage: Machine.Stage = .run, open: Set<Machine.Pipe> = allOpen, streams: Bool = false,
                 socketLimit: Int64 = 1 << 20, watchesSockets: Bool = true) -> Machine {
        Machine(stage: stage, limits: Self.limits, socketLimitBytes: socketLimit, open: open, streams: streams,
                watchesSockets: watchesSockets, clock: clock)
    }

    func outcome(_ m: Machine, cpuNs: UInt64 = 0, oom: Bool = false) -> StageOutcome {
        m.outcome(cpuNs: cpuNs, oomKilled: oom, memoryPeakBytes: 0)
    }

    /// The output pipes end (the init's exit closed them).
    func endOutput(_ m: inout Machine) -> [Machine.Action] {
        m.handle(.ended(.stdout)) + m.handle(.ended(.stderr))
    }

    // MARK: deadline vs exit

    func test_an_exit_already_in_the_pipe_when_the_deadline_passes_is_not_a_timeout() {
        var m = machine()
        clock.advance(ms: 1200)  // the wake-up comes late: the status is there, and so is the deadline
        XCTAssertEqual(m.handle(.ready(.status)), [.read(.status)])
        XCTAssertEqual(m.handle(.status(waitStatus: Self.exitedZero)), [.killInit])
        XCTAssertEqual(m.handle(.tick), [], "the wake-up's events come before its clock")
        XCTAssertEqual(endOutput(&m), [.finish])
        let o = outcome(m)
        XCTAssertFalse(o.timedOut)
        XCTAssertEqual(o.waitStatus, 0)
        XCTAssertEqual(o.wallNs, 1_200_000_000)
    }

    func test_the_deadline_kills_the_sandbox_and_the_status_after_it_is_a_timeout() {
        var m = machine()
        clock.advance(ms: 999)
        XCTAssertEqual(m.handle(.tick), [.sampleCPU], "not yet")
        clock.advance(ms: 1)
        XCTAssertEqual(m.handle(.tick), [.kill(.wallTime)])
        XCTAssertEqual(m.handle(.status(waitStatus: Self.killedBySIGKILL)), [], "no second kill for a killed program")
        XCTAssertEqual(endOutput(&m), [.finish])
        XCTAssertTrue(outcome(m).timedOut)
        XCTAssertEqual(m.killedFor, .wallTime)
    }

    // MARK: output cap, CPU, sockets, client: the first kill is the only one

    func test_output_past_its_cap_kills_once_and_a_later_deadline_changes_nothing() {
        var m = machine()
        XCTAssertEqual(m.handle(.output(.stdout, Array("12345".utf8))), [])
        XCTAssertEqual(m.handle(.output(.stderr, Array("6789abc".utf8))), [.kill(.outputCap)])
        XCTAssertEqual(m.handle(.output(.stdout, Array("more".utf8))), [], "drained, not killed again")
        clock.advance(ms: 2000)
        XCTAssertEqual(m.handle(.tick), [])
        XCTAssertEqual(m.handle(.ended(.status)), [], "the killed init sent no status")
        XCTAssertEqual(endOutput(&m), [.finish], "the killed init's pipes ended")
        let o = outcome(m)
        XCTAssertFalse(o.timedOut)
        XCTAssertTrue(o.output.truncated)
        XCTAssertEqual(o.output.keptBytes, 10)
    }

    func test_cpu_time_at_its_limit_is_a_timeout_and_the_sockets_are_not_sampled() {
        var m = machine()
        clock.advance(ms: 50)
        XCTAssertEqual(m.handle(.tick), [.sampleCPU])
        XCTAssertEqual(m.handle(.cpuSample(usedNs: 800_000_000)), [.kill(.cpuTime)])
        XCTAssertTrue(outcome(m, cpuNs: 800_000_000).timedOut)
        XCTAssertFalse(outcome(m).oomKilled)
    }

    func test_sockets_are_counted_only_once_the_init_says_one_may_exist() {
        var m = machine(watchesSockets: false)
        clock.advance(ms: 50)
        XCTAssertEqual(m.handle(.tick), [.sampleCPU])
        XCTAssertEqual(m.handle(.cpuSample(usedNs: 10_000_000)), [], "no socket but unix ones can exist yet")
        XCTAssertEqual(m.handle(.networkTouched), [], "counted at the next sample")
        clock.advance(ms: 50)
        XCTAssertEqual(m.handle(.tick), [.sampleCPU])
        XCTAssertEqual(m.handle(.cpuSample(usedNs: 20_000_000)), [.sampleSockets])
        XCTAssertEqual(m.handle(.socketSample(queuedBytes: (1 << 20) + 1)), [.kill(.socketMemory)])
    }

    func test_sockets_past_their_bound_are_oom_not_a_timeout() {
        var m = machine(socketLimit: 1 << 20)
        clock.advance(ms: 50)
        XCTAssertEqual(m.handle(.tick), [.sampleCPU])
        XCTAssertEqual(m.handle(.cpuSample(usedNs: 10_000_000)), [.sampleSockets], "CPU within its limit: then the sockets")
        XCTAssertEqual(m.handle(.socketSample(queuedBytes: 1 << 20)), [], "at the bound is within it")
        clock.advance(ms: 50)
        XCTAssertEqual(m.handle(.tick), [.sampleCPU])
        XCTAssertEqual(m.handle(.cpuSample(usedNs: 20_000_000)), [.sampleSockets])
        XCTAssertEqual(m.handle(.socketSample(queuedBytes: (1 << 20) + 1)), [.kill(.socketMemory)])
        clock.advance(ms: 2000)
        XCTAssertEqual(m.handle(.tick), [], "a killed run does not time out as well")
        let o = outcome(m)
        XCTAssertTrue(o.oomKilled)
        XCTAssertFalse(o.timedOut)
    }

    /// One sample of the clock's turn: the tick, then what the cgroup says.
    func sample(_ m: inout Machine, cpuMs: UInt64, memory: Int64 = 1 << 20) -> [Machine.Action] {
        clock.advance(ms: 50)
        XCTAssertEqual(m.handle(.tick), [.sampleCPU])
        return m.handle(.cpuSample(usedNs: cpuMs * 1_000_000, memoryBytes: memory))
    }

    func test_a_run_idle_for_two_samples_gives_its_turn_back_and_takes_one_when_busy_again() {
        var m = machine()
        XCTAssertEqual(sample(&m, cpuMs: 5), [.sampleSockets], "the first sample is only a baseline")
        XCTAssertEqual(sample(&m, cpuMs: 5), [.sampleSockets], "idle for one sample")
        XCTAssertEqual(sample(&m, cpuMs: 6), [.turn(idle: true), .sampleSockets], "idle for two (1 ms is idle)")
        XCTAssertEqual(sample(&m, cpuMs: 6), [.sampleSockets], "said once")
        XCTAssertEqual(sample(&m, cpuMs: 30), [.turn(idle: false), .sampleSockets], "busy: a turn again")
        XCTAssertEqual(sample(&m, cpuMs: 60), [.sampleSockets])
        XCTAssertFalse(m.turnGivenBack)
    }

    func test_an_idle_run_holding_memory_or_queued_tcp_bytes_keeps_its_turn() {
        var m = machine()
        _ = sample(&m, cpuMs: 0)
        for _ in 0..<4 { XCTAssertEqual(sample(&m, cpuMs: 0, memory: 17 << 20), [.sampleSockets], "more than a quarter of 64 MiB") }
        XCTAssertEqual(m.handle(.socketSample(queuedBytes: 4096)), [])
        for _ in 0..<4 { XCTAssertEqual(sample(&m, cpuMs: 0), [.sampleSockets], "TCP bytes queued") }
        XCTAssertEqual(m.handle(.socketSample(queuedBytes: 0)), [])
        _ = sample(&m, cpuMs: 0)
        XCTAssertEqual(sample(&m, cpuMs: 0), [.turn(idle: true), .sampleSockets])
        XCTAssertEqual(sample(&m, cpuMs: 0, memory: 32 << 20), [.turn(idle: false), .sampleSockets], "memory grew: a turn again")
    }

    func test_the_socket_bound_is_at_most_the_memory_limit() {
        var m = machine(socketLimit: .max)
        clock.advance(ms: 50)
        _ = m.handle(.tick)
        _ = m.handle(.cpuSample(usedNs: 0))
        XCTAssertEqual(m.handle(.socketSample(queuedBytes: (64 << 20) + 1)), [.kill(.socketMemory)])
    }

    func test_an_oom_kill_is_the_cgroups_count_whatever_ended_the_stage() {
        var m = machine()
        XCTAssertEqual(m.handle(.status(waitStatus: Self.killedBySIGKILL)), [.killInit])
        XCTAssertEqual(endOutput(&m), [.finish])
        let o = outcome(m, oom: true)
        XCTAssertTrue(o.oomKilled)
        XCTAssertFalse(o.timedOut)
    }

    func test_a_client_gone_kills_and_is_no_timeout() {
        var m = machine()
        XCTAssertEqual(m.handle(.clientGone), [.kill(.clientGone)])
        XCTAssertFalse(m.waitPlan().pipes.contains(.cancel), "a fired cancel fd stays readable: not watched again")
        XCTAssertEqual(m.handle(.clientGone), [])
        XCTAssertFalse(outcome(m).timedOut)
    }

    func test_a_sigxcpu_the_program_sends_itself_is_a_signal_not_a_timeout() {
        var m = machine()
        XCTAssertEqual(m.handle(.status(waitStatus: SIGXCPU)), [.killInit])
        XCTAssertFalse(outcome(m, cpuNs: 5_000_000).timedOut)
        XCTAssertTrue(outcome(m, cpuNs: 800_000_000).timedOut, "the cgroup's CPU time at the limit is, whatever ended it")
    }

    // MARK: samples and waits

    func test_samples_come_every_50_ms_and_the_waits_never_end_early() {
        var m = machine()
        XCTAssertEqual(m.waitPlan().timeoutMs, 50)
        clock.ns += 49_400_000
        XCTAssertEqual(m.handle(.tick), [])
        XCTAssertEqual(m.waitPlan().timeoutMs, 1, "0.6 ms rounds up: a 0 ms poll before the sample would spin")
        clock.ns += 600_000
        XCTAssertEqual(m.handle(.tick), [.sampleCPU])
        XCTAssertEqual(m.waitPlan().timeoutMs, 50)
        clock.advance(ms: 930)  // at 980 ms: a sample is due, the next would be at 1030
        XCTAssertEqual(m.handle(.tick), [.sampleCPU])
        XCTAssertEqual(m.waitPlan().timeoutMs, 20, "the deadline comes before the next sample")
    }

    func test_a_pipe_at_its_end_is_never_watched_again() {
        var m = machine()
        XCTAssertEqual(m.waitPlan().pipes, [.report, .stdout, .stderr, .status, .stdin, .cancel])
        XCTAssertEqual(m.handle(.ended(.report)), [])  // the program was exec'd: the report pipe closed
        XCTAssertEqual(m.handle(.ended(.stdin)), [])
        XCTAssertEqual(m.waitPlan().pipes, [.stdout, .stderr, .status, .cancel])
        XCTAssertEqual(m.handle(.ready(.report)), [], "no read of a pipe known to be at its end")
    }

    // MARK: EOF and status, in either order

    func test_output_ending_before_the_status_waits_for_the_status_and_leaves_the_init_to_the_teardown() {
        var m = machine()
        XCTAssertEqual(endOutput(&m), [])
        XCTAssertFalse(m.isFinished)
        XCTAssertEqual(m.waitPlan().pipes, [.report, .status, .stdin, .cancel])
        XCTAssertEqual(m.handle(.status(waitStatus: Self.exitedZero)), [.finish], "no kill on the reply's path")
        XCTAssertTrue(m.initLeftAlive)
    }

    func test_a_status_before_the_output_ends_kills_the_init_and_waits_for_the_output() {
        var m = machine()
        XCTAssertEqual(m.handle(.status(waitStatus: Self.exitedZero)), [.killInit])
        XCTAssertFalse(m.initLeftAlive)
        XCTAssertEqual(m.handle(.output(.stdout, Array("late\n".utf8))), [], "what a leftover wrote before it died")
        XCTAssertEqual(m.handle(.ended(.stdout)), [])
        clock.advance(ms: 100)
        XCTAssertEqual(m.handle(.tick), [], "no sampling after the program's exit")
        XCTAssertEqual(m.handle(.ended(.stderr)), [.finish])
        let o = outcome(m)
        XCTAssertEqual(o.output.texts().stdout, "late\n")
        XCTAssertEqual(o.wallNs, 0, "the program's wall time ends at its exit")
    }

    func test_output_held_open_past_the_grace_ends_the_stage() {
        var m = machine()
        XCTAssertEqual(m.handle(.status(waitStatus: Self.exitedZero)), [.killInit])
        XCTAssertEqual(m.waitPlan().timeoutMs, 3000)
        clock.advance(ms: 2999)
        XCTAssertEqual(m.handle(.tick), [])
        clock.advance(ms: 1)
        XCTAssertEqual(m.handle(.tick), [.finish])
    }

    func test_an_init_gone_without_a_status_ends_the_stage_once_the_output_has() {
        var m = machine()
        XCTAssertEqual(m.handle(.ended(.status)), [])
        XCTAssertEqual(endOutput(&m), [.finish])
        XCTAssertNil(outcome(m).waitStatus)
    }

    func test_a_failed_exec_is_reported_with_its_errno() {
        var m = machine()
        XCTAssertEqual(m.handle(.ready(.report)), [.read(.report)])
        XCTAssertEqual(m.handle(.startFailed(errno: ENOENT)), [])
        XCTAssertEqual(m.handle(.status(waitStatus: 127 << 8)), [.killInit])
        XCTAssertEqual(m.startError, ENOENT)
    }

    // MARK: compile, then run

    func test_the_compile_ends_at_its_status_with_all_the_compiler_wrote_and_leaves_the_pipes_open() {
        var compile = machine(.compile)
        XCTAssertFalse(compile.waitPlan().pipes.contains(.stdin), "the compiler reads no stdin: the program's pipe waits")
        XCTAssertEqual(compile.handle(.status(waitStatus: Self.exitedZero)), [.read(.stdout), .read(.stderr), .finish],
                       "the compiler has exited: what it wrote is read before the stage ends")
        XCTAssertEqual(compile.handle(.output(.stderr, Array("warning\n".utf8))), [], "read after the finish, still kept")
        XCTAssertEqual(compile.output.texts().stderr, "warning\n")
        XCTAssertEqual(compile.handle(.tick), [])
        XCTAssertEqual(compile.open, Self.allOpen, "the init keeps the pipes for the program")

        var run = machine(.run, open: compile.open)
        XCTAssertEqual(run.waitPlan().pipes, [.report, .stdout, .stderr, .status, .stdin, .cancel])
        XCTAssertEqual(run.handle(.ended(.report)), [])
        XCTAssertEqual(run.handle(.status(waitStatus: Self.exitedZero)), [.killInit])
        XCTAssertEqual(endOutput(&run), [.finish])
        XCTAssertEqual(run.output.keptBytes, 0, "each stage its own output")
    }

    func test_a_compile_that_times_out_is_killed_and_ends_with_its_status() {
        var compile = machine(.compile)
        clock.advance(ms: 1000)
        XCTAssertEqual(compile.handle(.tick), [.kill(.wallTime)])
        XCTAssertEqual(compile.handle(.status(waitStatus: Self.killedBySIGKILL)), [.read(.stdout), .read(.stderr), .finish])
        XCTAssertTrue(outcome(compile).timedOut)
    }

    // MARK: streaming

    func test_a_stream_run_forwards_only_the_output_it_keeps() {
        var m = machine(streams: true)
        XCTAssertEqual(m.handle(.output(.stdout, Array("hello".utf8))), [.forward(.stdout, Array("hello".utf8))])
        XCTAssertEqual(m.handle(.output(.stdout, Array("world!!".utf8))),
                       [.forward(.stdout, Array("world".utf8)), .kill(.outputCap)])
        XCTAssertEqual(m.handle(.output(.stdout, Array("x".utf8))), [])
    }
}
