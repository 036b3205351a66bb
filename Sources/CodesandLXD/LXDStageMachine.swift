import CodesandCore
import CodesandProtocol

/// One exec (a compile stage or the program) as a state machine: the driver (LXDStageRunner) tells
/// it what came over the websockets, what LXD's operation said, what the host's cgroup counted, and
/// that time passed; it answers what to do. No I/O and no clock of its own, so each ordering of
/// events is a unit test.
///
/// The rules (the native backend's, on LXD's terms):
/// - Until the command's exit: its wall deadline; every 50 ms the container's CPU time; an output
///   past its cap; the client gone. The first of these kills the exec's processes and is the only
///   one that counts.
/// - The command's exit kills what it left behind; the stage is over when both output streams have
///   ended. A background child holding stdout keeps LXD's operation (and so the exit) from coming:
///   the host seeing the main process gone kills the leftovers too, and the exit follows.
/// - After an exit or a kill, the streams are waited for `graceNs` at most.
struct LXDStageMachine {
    enum Event: Equatable, Sendable {
        case output(OutputStream, [UInt8])
        /// The stream's end (LXD's empty text frame, or the websocket closed).
        case ended(OutputStream)
        /// LXD's operation ended with this `return` (a wait status already, see LXDExecSession).
        case exited(waitStatus: Int32)
        case cpuSample(usedNs: UInt64)
        /// The host sees the command's main process gone while others of the exec remain (a
        /// background child holding stdout keeps LXD's operation from ending).
        case mainExited
        case clientGone
        case tick
    }

    enum Action: Equatable, Sendable {
        /// Output the run keeps, for a `stream` request's client.
        case forward(OutputStream, [UInt8])
        case sampleCPU
        /// Kill every process of the exec.
        case kill(KillReason)
        /// The command exited: kill whatever it left behind.
        case killLeftovers
        case finish
    }

    enum KillReason: Equatable, Sendable { case wallTime, cpuTime, outputCap, clientGone }

    static let sampleIntervalNs: UInt64 = 50_000_000
    static let graceNs: UInt64 = 2_000_000_000

    private let start: UInt64
    private let deadline: UInt64
    private let cpuLimitNs: UInt64
    private let streams: Bool
    private(set) var output: OutputCollector
    private var open: Set<OutputStream> = [.stdout, .stderr]
    private var nextSample: UInt64
    private(set) var waitStatus: Int32?
    private var exitedAt: UInt64?
    private(set) var killedFor: KillReason?
    private var leftoversKilled = false
    private var stopWaitingAt: UInt64?
    private(set) var finishedAt: UInt64?

    init(limits: LimitSet, streams: Bool, now: UInt64) {
        start = now
        deadline = now + UInt64(limits.wallMs) * 1_000_000
        cpuLimitNs = UInt64(limits.cpuMs) * 1_000_000
        self.streams = streams
        output = OutputCollector(maxBytes: Int(limits.outputBytes), maxLines: Int(limits.outputLines))
        nextSample = now + Self.sampleIntervalNs
    }

    var isFinished: Bool { finishedAt != nil }
    private var watchesLimits: Bool { !isFinished && killedFor == nil && waitStatus == nil }

    mutating func handle(_ event: Event, now: UInt64) -> [Action] {
        guard !isFinished else { return [] }
        switch event {
        case .output(let stream, let bytes):
            let kept = output.keep(bytes, from: stream)
            var actions: [Action] = streams && !kept.isEmpty ? [.forward(stream, Array(kept))] : []
            if output.truncated { actions += kill(.outputCap, now) }
            return actions
        case .ended(let stream):
            open.remove(stream)
            return finishIfOver(now)
        case .exited(let status):
            guard waitStatus == nil else { return [] }
            waitStatus = status
            exitedAt = now
            stopWaitingAt = min(stopWaitingAt ?? .max, now + Self.graceNs)
            let kill: [Action] = killedFor == nil && !leftoversKilled ? [.killLeftovers] : []
            leftoversKilled = true
            return kill + finishIfOver(now)
        case .mainExited:
            guard watchesLimits, !leftoversKilled else { return [] }
            leftoversKilled = true
            return [.killLeftovers]
        case .cpuSample(let used):
            guard watchesLimits else { return [] }
            return used >= cpuLimitNs ? kill(.cpuTime, now) : []
        case .clientGone:
            return kill(.clientGone, now)
        case .tick:
            if let end = stopWaitingAt, now >= end { return finish(now) }
            guard watchesLimits else { return [] }
            if now >= deadline { return kill(.wallTime, now) }
            guard now >= nextSample else { return [] }
            nextSample = now + Self.sampleIntervalNs
            return [.sampleCPU]
        }
    }

    /// When the driver must wake up next to tick, at the latest.
    func nextWake(now: UInt64) -> UInt64 {
        stopWaitingAt ?? min(deadline, nextSample)
    }

    func outcome(cpuNs: UInt64, oomKilled: Bool, memoryPeakBytes: Int64, now: UInt64) -> StageOutcome {
        let end = exitedAt ?? finishedAt ?? now
        // A kill's own SIGKILL is not the program's status: it "did not exit by itself".
        let status = killedFor == nil ? waitStatus : nil
        return StageOutcome(waitStatus: status, timedOut: killedFor == .wallTime || killedFor == .cpuTime || cpuNs >= cpuLimitNs,
                            oomKilled: oomKilled, output: output, wallNs: end - start, cpuNs: cpuNs,
                            memoryPeakBytes: memoryPeakBytes)
    }

    private mutating func kill(_ reason: KillReason, _ now: UInt64) -> [Action] {
        guard killedFor == nil, waitStatus == nil else { return [] }
        killedFor = reason
        stopWaitingAt = min(stopWaitingAt ?? .max, now + Self.graceNs)
        return [.kill(reason)]
    }

    private mutating func finishIfOver(_ now: UInt64) -> [Action] {
        // Killed or not, LXD's operation reports the command's end: the stage ends with it.
        guard open.isEmpty, waitStatus != nil else { return [] }
        return finish(now)
    }

    private mutating func finish(_ now: UInt64) -> [Action] {
        guard !isFinished else { return [] }
        finishedAt = now
        return [.finish]
    }
}
