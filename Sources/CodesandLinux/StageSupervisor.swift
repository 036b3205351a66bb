import CSandbox
import CodesandCore
import CodesandProtocol
import Glibc

/// Drives one stage's StageMachine against the real sandbox: waits (poll) for what the machine
/// watches, turns what happened into its events, and does what it answers. The one place a run
/// blocks, on its own thread.
struct StageSupervisor {
    let sandbox: SandboxInstance
    /// Becomes readable when the request is cancelled (client gone, daemon stopping); -1: never.
    let cancelFD: Int32
    /// For `stream` runs: the output the machine forwards.
    let streamer: OutputStreamer?
    var pipes: SandboxPipes
    /// The run's turn among the runs at once, given back while it is idle (RunTurn); nil: kept.
    var turn: RunTurn? = nil
    /// Host files' page cache the stage began with, left out of its memory samples (an idle run
    /// holds little of its own, however much an earlier compile or run left cached).
    var cacheBaseline: Int64 = 0

    /// Runs the machine until it finishes. `cpuBefore`: the cgroup's CPU time when the stage began.
    mutating func supervise(_ machine: inout StageMachine, cpuBefore: UInt64) {
        while !machine.isFinished {
            let plan = machine.waitPlan()
            for pipe in pipes.wait(for: plan.pipes, timeoutMs: plan.timeoutMs, cancelFD: cancelFD) {
                dispatch(pipe == .cancel ? .clientGone : .ready(pipe), to: &machine, cpuBefore: cpuBefore)
            }
            dispatch(.tick, to: &machine, cpuBefore: cpuBefore)
        }
    }

    /// Hands the machine an event, does what it answers, and hands it what those actions found,
    /// in order.
    private mutating func dispatch(_ event: StageMachine.Event, to machine: inout StageMachine, cpuBefore: UInt64) {
        for action in machine.handle(event) {
            for found in perform(action, cpuBefore: cpuBefore) { dispatch(found, to: &machine, cpuBefore: cpuBefore) }
        }
    }

    private mutating func perform(_ action: StageMachine.Action, cpuBefore: UInt64) -> [StageMachine.Event] {
        switch action {
        case .read(.stdout): return readOutput(.stdout)
        case .read(.stderr): return readOutput(.stderr)
        case .read(.status):
            switch pipes.readStatus() {
            case .value(let record) where Int(record.stage) == CS_STAGE_NETWORK:
                sandbox.networkAnnounced()
                return [.networkTouched]
            case .value(let record):
                sandbox.stageReported(record)
                return [.status(waitStatus: record.wait_status)]
            case .wouldBlock: return []
            case .end: return [.ended(.status)]
            }
        case .read(.report): return readReports()
        case .read(.stdin), .read(.cancel): return []
        case .writeStdin: return pipes.pumpStdin() ? [] : [.ended(.stdin)]
        case .forward(let stream, let bytes):
            bytes.withUnsafeBytes { streamer?.feed($0, from: stream) }
            return []
        case .sampleCPU:
            return [.cpuSample(usedNs: sandbox.cgroup.cpuNs() &- cpuBefore,
                               memoryBytes: max(0, sandbox.cgroup.memoryUsage() - cacheBaseline))]
        case .turn(let idle): turn?.runIsIdle(idle)
        case .sampleSockets: return [.socketSample(queuedBytes: SocketQueues.estimatedBytes(ofNetnsOf: sandbox.initPID))]
        case .kill: sandbox.kill()
        case .killInit: sandbox.killInit()
        case .finish: break  // the loop ends once this wake-up is handled
        }
        return []
    }

    /// At most 16 reads (1 MiB) at a time: a flood still lets the machine see its clock.
    private mutating func readOutput(_ stream: OutputStream) -> [StageMachine.Event] {
        var found: [StageMachine.Event] = []
        for _ in 0..<16 {
            switch pipes.readOutput(stream) {
            case .value(let bytes):
                found.append(.output(stream, bytes))
                if bytes.count < SandboxPipes.readSize { return found }
            case .wouldBlock:
                return found
            case .end:
                return found + [.ended(stream == .stdout ? .stdout : .stderr)]
            }
        }
        return found
    }

    private func readReports() -> [StageMachine.Event] {
        var found: [StageMachine.Event] = []
        while true {
            switch pipes.readReport() {
            case .value(let record):
                if record.kind == Int32(CS_REPORT_EXEC_FAILED.rawValue) || record.kind == Int32(CS_REPORT_SETUP_FAILED.rawValue) {
                    found.append(.startFailed(errno: record.err))
                }
            case .wouldBlock:
                return found
            case .end:
                return found + [.ended(.report)]  // never watched again: a pipe at its end is always "ready"
            }
        }
    }
}
