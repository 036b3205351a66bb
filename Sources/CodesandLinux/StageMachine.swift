import CodesandCore
import CodesandProtocol

/// One stage of a run (the compile, or the program) as a state machine. The supervisor
/// (StageSupervisor) tells it what happened: a pipe is ready, output came, a pipe ended, the
/// stage's status record came, a sample was taken, the client went away, time passed. It does
/// what the machine answers: read, write stdin, sample, kill, finish. The machine makes no system
/// call and reads the time only from its clock, so each ordering of events is a unit test.
///
/// The rules:
/// - A wake-up's events are handled before its clock is read (`tick` comes last): a program whose
///   exit is already in the pipe when its deadline passes exited in time.
/// - The compile stage ends at the compiler's status, with all it wrote (its pipes stay open: the
///   program's stage reads them next). The run stage ends at the program's status once its output
///   has ended; if the output has not ended then, the status kills the init, whose death takes
///   whatever the program left behind (and their hold on the output); else the slot's teardown
///   kills it, after the reply.
/// - Either stage ends when the init is gone (its status pipe ended) and the output has ended, and
///   3 s after a kill at the latest (nothing left can still write).
/// - Until the program's status: its wall deadline; every 50 ms the cgroup's CPU time, then (if
///   within its limit) the TCP bytes queued in the sandbox; an output past its cap; the client
///   gone. The first of these kills the sandbox and is the only one that counts.
struct StageMachine {
    enum Stage: Sendable { case compile, run }

    /// The sandbox's pipes and the request's cancel fd, in the order one wake-up handles them: an
    /// exec failure's report before the status that follows it, output before the status that
    /// ends the stage.
    enum Pipe: CaseIterable, Hashable, Sendable { case report, stdout, stderr, status, stdin, cancel }

    enum Event: Equatable, Sendable {
        /// poll says the pipe has something to read (stdin: room to write).
        case ready(Pipe)
        case output(OutputStream, [UInt8])
        /// The pipe's end (EOF, or an error): it is not watched any more.
        case ended(Pipe)
        /// The stage's main process ended with this wait status.
        case status(waitStatus: Int32)
        /// The init reports that the stage's program could not be started (its errno).
        case startFailed(errno: Int32)
        /// The cgroup's CPU time so far in the stage, and the memory it holds now.
        case cpuSample(usedNs: UInt64, memoryBytes: Int64 = 0)
        case socketSample(queuedBytes: Int64)
        /// The init says a socket other than a unix one may exist from now on (CS_STAGE_NETWORK).
        case networkTouched
        case clientGone
        /// This wake-up's events are handled: the clock's turn (deadline, samples, end of waiting).
        case tick
    }

    enum Action: Equatable, Sendable {
        /// Read what the pipe holds, until it would block.
        case read(Pipe)
        case writeStdin
        /// Output the run keeps, for a `stream` request's client.
        case forward(OutputStream, [UInt8])
        case sampleCPU
        case sampleSockets
        /// The program has used (nearly) no CPU for `idleAfterSamples` samples, holding little memory
        /// and no queued TCP bytes: its turn among the runs at once goes to another run (idle:
        /// true, see RunTurn); it takes one again once it uses CPU or memory (false).
        case turn(idle: Bool)
        /// Kill every process of the sandbox.
        case kill(KillReason)
        /// The program exited: kill its init, whose death takes whatever the program left.
        case killInit
        /// The stage is over: stop waiting once this wake-up is handled.
        case finish
    }

    enum KillReason: Equatable, Sendable { case wallTime, cpuTime, outputCap, socketMemory, clientGone }

    static let sampleIntervalNs: UInt64 = 50_000_000
    static let killGraceNs: UInt64 = 3_000_000_000
    /// CPU time within one sample below which the program counts as idle (2% of a core), and how
    /// many such samples in a row give its turn back (100 ms).
    static let idleCPUNs: UInt64 = 1_000_000
    static let idleAfterSamples = 2

    let stage: Stage
    private let clock: any RunClock
    private let start: UInt64
    private let deadline: UInt64
    private let cpuLimitNs: UInt64
    private let socketLimitBytes: Int64
    /// An idle run gives its turn back only while it holds at most this (a quarter of its limit).
    private let idleMemoryBytes: Int64
    private var lastCPU: UInt64?
    private var idleSamples = 0
    private var lastQueued: Int64 = 0
    /// Whether TCP queues are counted at each sample: only once a socket that could hold them may
    /// exist (the init's word). Reading the namespace's sockstat costs the daemon two /proc opens.
    private var watchesSockets: Bool
    /// The run gave its turn back (and has not taken one again).
    private(set) var turnGivenBack = false
    /// The kept output goes to the client as it comes (run stage of a `stream` request).
    private let streams: Bool
    private(set) var output: OutputCollector
    /// The pipes not at their end yet (the run stage starts with what the compile left open).
    private(set) var open: Set<Pipe>
    private var nextSample: UInt64
    private(set) var waitStatus: Int32?
    private var exitedAt: UInt64?
    private(set) var killedFor: KillReason?
    /// After the program's exit or a kill: the most the pipes are waited for.
    private var stopWaitingAt: UInt64?
    private(set) var startError: Int32?
    private(set) var finishedAt: UInt64?
    /// The run ended with its output and its program, the init not killed: the slot's teardown,
    /// after the reply, kills it (with whatever the program left that holds no output).
    private(set) var initLeftAlive = false

    /// `socketLimitBytes`: TCP bytes the sandbox may queue (SocketQueues), at most its memory limit;
    /// `watchesSockets`: whether the sandbox may hold a TCP socket already (else from `.networkTouched`).
    init(stage: Stage, limits: LimitSet, socketLimitBytes: Int64, open: Set<Pipe>, streams: Bool = false,
         watchesSockets: Bool = true, clock: any RunClock) {
        self.stage = stage
        self.watchesSockets = watchesSockets
        self.clock = clock
        start = clock.now()
        deadline = start + UInt64(limits.wallMs) * 1_000_000
        cpuLimitNs = UInt64(limits.cpuMs) * 1_000_000
        self.socketLimitBytes = min(socketLimitBytes, limits.memoryBytes)
        idleMemoryBytes = limits.memoryBytes / 4
        self.streams = streams
        output = OutputCollector(maxBytes: Int(limits.outputBytes), maxLines: Int(limits.outputLines))
        self.open = open
        nextSample = start + Self.sampleIntervalNs
    }

    var isFinished: Bool { finishedAt != nil }

    /// Limits are watched until the program's status (or a kill, or the end).
    private var watchesLimits: Bool { finishedAt == nil && killedFor == nil && waitStatus == nil }

    mutating func handle(_ event: Event) -> [Action] {
        let now = clock.now()
        switch event {
        case .ready(.cancel), .clientGone:
            return kill(.clientGone, now)
        case .ready(.stdin):
            return open.contains(.stdin) && !isFinished ? [.writeStdin] : []
        case .ready(let pipe):
            return open.contains(pipe) ? [.read(pipe)] : []
        case .output(let stream, let bytes):
            let kept = output.keep(bytes, from: stream)
            var actions: [Action] = streams && !kept.isEmpty ? [.forward(stream, Array(kept))] : []
            if output.truncated { actions += kill(.outputCap, now) }
            return actions
        case .ended(let pipe):
            open.remove(pipe)
            return finishIfOver(now)
        case .status(let status):
            guard waitStatus == nil, !isFinished else { return [] }
            waitStatus = status
            exitedAt = now
            switch stage {
            case .compile:
                // The compiler has exited: all it wrote is in the pipes now.
                return [Pipe.stdout, .stderr].filter(open.contains).map(Action.read) + finish(now)
            case .run:
                guard killedFor == nil else { return finishIfOver(now) }
                stopWaitingAt = now + Self.killGraceNs
                // Nothing holds the output any more: the run is over, and its init (waiting for
                // the teardown) is killed after the reply. Else its death ends what the program
                // left behind, and with them the output.
                if outputEnded {
                    initLeftAlive = true
                    return finish(now)
                }
                return [.killInit] + finishIfOver(now)
            }
        case .startFailed(let errno):
            startError = errno
            return []
        case .cpuSample(let used, let memory):
            guard watchesLimits else { return [] }
            guard used < cpuLimitNs else { return kill(.cpuTime, now) }
            return turnChange(used: used, memory: memory) + (watchesSockets ? [.sampleSockets] : [])
        case .networkTouched:
            watchesSockets = true
            return []
        case .socketSample(let queued):
            guard watchesLimits else { return [] }
            lastQueued = queued
            return queued > socketLimitBytes ? kill(.socketMemory, now) : []
        case .tick:
            return clockTurn(now)
        }
    }

    /// What to wait for next (in Pipe order), and for how long at most.
    func waitPlan() -> (pipes: [Pipe], timeoutMs: Int32) {
        let pipes = Pipe.allCases.filter { pipe in
            switch pipe {
            case .stdin: return stage == .run && open.contains(.stdin) && killedFor == nil
            case .cancel: return killedFor == nil
            default: return open.contains(pipe)
            }
        }
        let now = clock.now()
        let wakeAt = stopWaitingAt ?? min(deadline, nextSample)
        let ms = wakeAt <= now ? 0 : (wakeAt - now + 999_999) / 1_000_000  // never early: an early wake-up would spin
        return (pipes, Int32(min(ms, 60_000)))
    }

    /// The stage's outcome, given what its cgroup counted: CPU time that reached the limit is a
    /// timeout whatever ended the stage (the cgroup's count is exact; a program's own SIGXCPU is
    /// only a signal).
    func outcome(cpuNs: UInt64, oomKilled: Bool, memoryPeakBytes: Int64) -> StageOutcome {
        let end = exitedAt ?? finishedAt ?? clock.now()
        return StageOutcome(waitStatus: waitStatus,
                            timedOut: killedFor == .wallTime || killedFor == .cpuTime || cpuNs >= cpuLimitNs,
                            oomKilled: oomKilled || killedFor == .socketMemory, output: output,
                            wallNs: end - start, cpuNs: cpuNs, memoryPeakBytes: memoryPeakBytes)
    }

    private mutating func clockTurn(_ now: UInt64) -> [Action] {
        guard !isFinished else { return [] }
        if let end = stopWaitingAt, now >= end { return finish(now) }  // nothing left that could still write
        guard watchesLimits else { return [] }
        if now >= deadline { return kill(.wallTime, now) }
        guard now >= nextSample else { return [] }
        nextSample = now + Self.sampleIntervalNs
        return [.sampleCPU]
    }

    /// Whether the run's turn changes hands at this sample (see Action.turn).
    private mutating func turnChange(used: UInt64, memory: Int64) -> [Action] {
        defer { lastCPU = used }
        guard let last = lastCPU else { return [] }
        let idle = used &- last <= Self.idleCPUNs && memory <= idleMemoryBytes && lastQueued == 0
        idleSamples = idle ? idleSamples + 1 : 0
        if idle, !turnGivenBack, idleSamples >= Self.idleAfterSamples {
            turnGivenBack = true
            return [.turn(idle: true)]
        }
        if !idle, turnGivenBack {
            turnGivenBack = false
            return [.turn(idle: false)]
        }
        return []
    }

    private mutating func kill(_ reason: KillReason, _ now: UInt64) -> [Action] {
        guard killedFor == nil, !isFinished else { return [] }
        killedFor = reason
        stopWaitingAt = min(stopWaitingAt ?? .max, now + Self.killGraceNs)
        return [.kill(reason)]
    }

    /// Over when the output has ended and the stage's process has (its status came, or the init
    /// that would send it is gone).
    private var outputEnded: Bool { !open.contains(.stdout) && !open.contains(.stderr) }

    private mutating func finishIfOver(_ now: UInt64) -> [Action] {
        guard outputEnded, waitStatus != nil || !open.contains(.status) else { return [] }
        return finish(now)
    }

    private mutating func finish(_ now: UInt64) -> [Action] {
        guard !isFinished else { return [] }
        finishedAt = now
        return [.finish]
    }
}
