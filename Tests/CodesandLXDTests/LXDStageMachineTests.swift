import CodesandCore
import CodesandProtocol
import XCTest

@testable import CodesandLXD

/// The exec's state machine, event by event on a made-up clock (ns).
final class LXDStageMachineTests: XCTestCase {
    let limits = LimitSet(wallMs: 1000, cpuMs: 500, memoryBytes: 1 << 28, pids: 64, outputBytes: 10, outputLines: 3)
    let ms: UInt64 = 1_000_000

    func test_an_exit_kills_the_leftovers_and_the_stage_ends_with_both_streams() {
        var m = LXDStageMachine(limits: limits, streams: false, now: 0)
        XCTAssertEqual(m.handle(.output(.stdout, Array("hi\n".utf8)), now: 1 * ms), [])
        XCTAssertEqual(m.handle(.exited(waitStatus: 3 << 8), now: 2 * ms), [.killLeftovers])
        XCTAssertEqual(m.handle(.ended(.stdout), now: 3 * ms), [])
        XCTAssertEqual(m.handle(.ended(.stderr), now: 4 * ms), [.finish])
        let o = m.outcome(cpuNs: 0, oomKilled: false, memoryPeakBytes: 0, now: 5 * ms)
        XCTAssertEqual(o.waitStatus, 3 << 8)
        XCTAssertEqual(o.wallNs, 2 * ms)
        XCTAssertFalse(o.timedOut)
        XCTAssertEqual(o.output.texts().stdout, "hi\n")
    }

    func test_the_wall_deadline_kills_and_the_kill_is_not_the_programs_status() {
        var m = LXDStageMachine(limits: limits, streams: false, now: 0)
        XCTAssertEqual(m.handle(.tick, now: 999 * ms).filter { if case .kill = $0 { return true }; return false }, [])
        XCTAssertEqual(m.handle(.tick, now: 1000 * ms), [.kill(.wallTime)])
        XCTAssertEqual(m.handle(.exited(waitStatus: 9), now: 1003 * ms), [])
        _ = m.handle(.ended(.stdout), now: 1004 * ms)
        XCTAssertEqual(m.handle(.ended(.stderr), now: 1004 * ms), [.finish])
        let o = m.outcome(cpuNs: 0, oomKilled: false, memoryPeakBytes: 0, now: 1005 * ms)
        XCTAssertTrue(o.timedOut)
        XCTAssertNil(o.waitStatus, "killed with its sandbox: no status of its own")
    }

    func test_an_exit_already_reported_when_the_deadline_passes_was_in_time() {
        var m = LXDStageMachine(limits: limits, streams: false, now: 0)
        XCTAssertEqual(m.handle(.exited(waitStatus: 0), now: 999 * ms), [.killLeftovers])
        XCTAssertEqual(m.handle(.tick, now: 1001 * ms), [])
        _ = m.handle(.ended(.stdout), now: 1002 * ms)
        XCTAssertEqual(m.handle(.ended(.stderr), now: 1002 * ms), [.finish])
        XCTAssertFalse(m.outcome(cpuNs: 0, oomKilled: false, memoryPeakBytes: 0, now: 0).timedOut)
    }

    func test_cpu_time_at_its_limit_kills() {
        var m = LXDStageMachine(limits: limits, streams: false, now: 0)
        XCTAssertEqual(m.handle(.tick, now: 50 * ms), [.sampleCPU])
        XCTAssertEqual(m.handle(.cpuSample(usedNs: 499 * ms), now: 50 * ms), [])
        XCTAssertEqual(m.handle(.cpuSample(usedNs: 500 * ms), now: 60 * ms), [.kill(.cpuTime)])
        XCTAssertTrue(m.outcome(cpuNs: 500 * ms, oomKilled: false, memoryPeakBytes: 0, now: 70 * ms).timedOut)
    }

    func test_output_past_the_cap_kills_once_and_streams_only_what_is_kept() {
        var m = LXDStageMachine(limits: limits, streams: true, now: 0)
        XCTAssertEqual(m.handle(.output(.stdout, Array("12345".utf8)), now: 1), [.forward(.stdout, Array("12345".utf8))])
        XCTAssertEqual(m.handle(.output(.stderr, Array("6789ABC".utf8)), now: 2),
                       [.forward(.stderr, Array("6789A".utf8)), .kill(.outputCap)])
        XCTAssertEqual(m.handle(.output(.stdout, Array("more".utf8)), now: 3), [])
        XCTAssertTrue(m.output.truncated)
        XCTAssertEqual(m.output.keptBytes, 10)
    }

    func test_streams_held_open_after_an_exit_are_given_up_after_the_grace() {
        var m = LXDStageMachine(limits: limits, streams: false, now: 0)
        _ = m.handle(.exited(waitStatus: 0), now: 10 * ms)
        XCTAssertEqual(m.handle(.tick, now: 10 * ms + LXDStageMachine.graceNs - 1), [])
        XCTAssertEqual(m.handle(.tick, now: 10 * ms + LXDStageMachine.graceNs), [.finish])
        XCTAssertEqual(m.handle(.tick, now: 20 * ms + LXDStageMachine.graceNs), [], "finished once")
    }

    func test_the_client_gone_kills_the_run() {
        var m = LXDStageMachine(limits: limits, streams: false, now: 0)
        XCTAssertEqual(m.handle(.clientGone, now: 5 * ms), [.kill(.clientGone)])
        XCTAssertEqual(m.handle(.clientGone, now: 6 * ms), [])
        XCTAssertFalse(m.outcome(cpuNs: 0, oomKilled: false, memoryPeakBytes: 0, now: 7 * ms).timedOut)
    }

    func test_lxd_returns_map_to_wait_statuses() {
        XCTAssertEqual(LXDExecSession.waitStatus(fromReturn: 0), 0)
        XCTAssertEqual(LXDExecSession.waitStatus(fromReturn: 3), 3 << 8)
        XCTAssertEqual(LXDExecSession.waitStatus(fromReturn: 127), 127 << 8)
        XCTAssertEqual(LXDExecSession.waitStatus(fromReturn: 137), 9, "128+n: killed by signal n")
        XCTAssertEqual(LXDExecSession.waitStatus(fromReturn: 255), 255 << 8)
    }
}

extension LXDStageMachineTests {
    func test_a_main_process_gone_with_a_child_holding_stdout_kills_the_child_once() {
        var m = LXDStageMachine(limits: limits, streams: false, now: 0)
        XCTAssertEqual(m.handle(.mainExited, now: 100 * ms), [.killLeftovers])
        XCTAssertEqual(m.handle(.mainExited, now: 150 * ms), [])
        XCTAssertEqual(m.handle(.exited(waitStatus: 0), now: 160 * ms), [], "its leftovers are being killed already")
        _ = m.handle(.ended(.stdout), now: 161 * ms)
        XCTAssertEqual(m.handle(.ended(.stderr), now: 161 * ms), [.finish])
        XCTAssertEqual(m.outcome(cpuNs: 0, oomKilled: false, memoryPeakBytes: 0, now: 0).waitStatus, 0)
    }
}
