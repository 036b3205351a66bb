import CodesandCore
import Glibc

// The life of a run (NativeBackend.run → SandboxRun.execute), on a thread of its own:
//
//   take the slot's ready sandbox (or build a plain one: the slot has none, or one built from
//   another generation of the configuration)
//   → a compile the compile cache holds is dropped from the job, and the stored program written
//     into the sandbox's home before the hand-over (CompileCache)
//   → first stage (the compile if there is one, else the program): its limits on the cgroup; a
//     pre-started sandbox that cannot take them (EBUSY: its interpreter already holds more) is
//     replaced by a plain one → decide, once, whether the waiting interpreter runs the program →
//     hand the job over (the init writes the file and starts the stage at once) → supervise →
//     account
//   → run stage, after a compile that succeeded: its output kept in the compile cache (before
//     anything of the snippet runs), the program's limits on the cgroup (the kernel reclaims the
//     compiler's page cache if they need it; EBUSY: the binary alone exceeds them, so the run is
//     oom), what is still charged counted out of its peak, the word 'r' → supervise → account
//   → end, whatever happened, in one place: the sandbox handed back to its slot, which tears it
//     down before its next sandbox, after the reply; its init killed at once unless the run ended
//     cleanly (the program and its output ended: then the init waits for that teardown).

/// One run in one slot, from its sandbox to its outcome. Used by one thread.
final class SandboxRun: @unchecked Sendable {
    private let job: SandboxJob
    private let slot: Int
    private let slots: SandboxSlots
    private let layout: SandboxLayout
    private let cancelFD: Int32
    private let streamer: OutputStreamer?
    private let clock: any RunClock
    /// The sandbox the run holds, handed back to its slot by `end`.
    private var held: SandboxInstance?
    /// Compiled programs by code, flags, compiler and system (nil: none are kept).
    private let compileCache: CompileCache?
    /// The run ended cleanly with its init waiting: the slot's teardown kills it, after the reply.
    private var initLeftAlive = false
    /// Its turn among the runs at once, which it gives back while idle.
    private let turn: RunTurn?

    /// `cancelFD` becomes readable when the request is cancelled (-1: never); `streamer` gets the
    /// program's output as it comes, for `stream` requests.
    init(job: SandboxJob, slot: Int, slots: SandboxSlots, layout: SandboxLayout, cancelFD: Int32,
         streamer: OutputStreamer? = nil, clock: any RunClock = MonotonicClock(), compileCache: CompileCache? = nil,
         turn: RunTurn? = nil) {
        self.job = job
        self.turn = turn
        self.compileCache = compileCache
        self.slot = slot
        self.slots = slots
        self.layout = layout
        self.cancelFD = cancelFD
        self.streamer = streamer
        self.clock = clock
    }

    /// The first stage's start: the sandbox it runs in, the job as handed over (without a compile
    /// the cache holds), and the counters before it.
    private struct Start {
        let sandbox: SandboxInstance
        let job: SandboxJob
        let cached: CompileCache.Entry?
        let cacheKey: String?
        let chargedBefore: Int64
        let cacheBefore: Int64
        let cpuBefore: UInt64
        let oomBefore: Int64
        let usesPrestart: Bool
    }

    /// Set by startIfReady: the job went to the sandbox already (or could not: the error).
    private var early: Result<Start, any Error>?
    /// The slot's ready sandbox, taken by startIfReady when it could not start the job at once.
    private var taken: ReadySandbox?

    /// The first stage's start, on the caller's thread, when nothing of it can block: the slot's
    /// ready sandbox serves, no compile stage, limits set at once, a job that fits in the control
    /// pipe. The run's thread then wakes while the init already reads its job (on a 2-core VM a
    /// thread's wake-up is tens of microseconds of the reply's time). Otherwise execute does all.
    func startIfReady() {
        guard job.compile == nil, JobHandOver.fitsThePipe(job), let ready = slots.take(slot) else { return }
        held = ready.instance
        taken = ready
        // Limits other than the sandbox's own mean cgroup writes (and a reclaim, or an OOM kill of a
        // waiting interpreter, inside the write): those are the run thread's.
        guard ready.layout === layout, SandboxSlots.mayServeARun(ready.instance.baseBorn),
              ready.instance.limits.sameInCgroup(as: job.limits),
              (try? ready.instance.beginStage(limits: job.limits)) != nil else { return }
        taken = nil
        early = Result { try handOver(job, to: ready.instance, cached: nil, cacheKey: nil) }
    }

    func execute() throws -> SandboxOutcome {
        defer { end() }
        return try run(try early?.get() ?? begin())
    }

    /// The first stage's start on the run's thread: whatever sandbox serves, a cached compile placed.
    private func begin() throws -> Start {
        var sandbox = try takeSandbox()
        // A compile the cache holds is not run: the job goes without it, its program placed first.
        var job = self.job
        let cacheKey = compileCache?.key(for: job, layout: layout)
        let cached = cacheKey.flatMap { compileCache?.lookup($0) }
        if cached != nil { job.compile = nil }
        let firstLimits = job.compile?.limits ?? job.limits
        sandbox = try applyFirstLimits(firstLimits, to: sandbox)
        if let cached, let output = self.job.compile?.output {
            sandbox.chargedSinceReady()
            try compileCache?.place(cached, into: sandbox, home: layout.config.home, output: output,
                                    uid: layout.config.uidBase + UInt32(slot))
        }
        return try handOver(job, to: sandbox, cached: cached, cacheKey: cacheKey)
    }

    private func handOver(_ job: SandboxJob, to sandbox: SandboxInstance, cached: CompileCache.Entry?,
                          cacheKey: String?) throws -> Start {
        // What the slot's cgroup holds before the stage (the init, what earlier sandboxes left:
        // page cache, per-CPU charge batches; see reclaimedEnough) is not the stage's peak; nor is
        // the CPU time of the init's setup.
        let before = sandbox.countersBeforeStage()
        let (chargedBefore, cpuBefore, oomBefore) = (before.charged, before.cpuNs, before.oomKills)
        // Whether the run was pre-started is decided here, and only here.
        let usesPrestart = job.prestart != nil && job.prestart?.language == sandbox.prestarted
        try JobHandOver.write(job, to: sandbox, usesPrestart: usesPrestart,
                              rlimits: (layout.config.fileSizeBytes, layout.config.openFiles))
        return Start(sandbox: sandbox, job: job, cached: cached, cacheKey: cacheKey, chargedBefore: chargedBefore,
                     cacheBefore: before.cache, cpuBefore: cpuBefore, oomBefore: oomBefore, usesPrestart: usesPrestart)
    }

    /// The stages, from the first one's hand-over to the outcome.
    private func run(_ start: Start) throws -> SandboxOutcome {
        let (sandbox, job, cached, cacheKey) = (start.sandbox, start.job, start.cached, start.cacheKey)
        let (chargedBefore, usesPrestart) = (start.chargedBefore, start.usesPrestart)
        var supervisor = StageSupervisor(sandbox: sandbox, cancelFD: cancelFD, streamer: streamer,
                                         pipes: SandboxPipes(sandbox: sandbox, stdin: job.stdin), turn: turn)
        var outcome = SandboxOutcome(compile: cached?.stage, run: nil)
        outcome.compileCached = cached != nil
        outcome.prestarted = usesPrestart
        var open = supervisor.pipes.initiallyOpen
        var memoryBefore = chargedBefore, cacheBefore = start.cacheBefore
        let firstCounters = (cpu: start.cpuBefore, oom: start.oomBefore)
        var runCounters: (cpu: UInt64, oom: Int64) = firstCounters
        if let compile = job.compile {
            let (stage, machine) = supervise(.compile, limits: compile.limits, open: open, memoryBefore: chargedBefore,
                                             cacheBefore: cacheBefore, countersBefore: firstCounters, with: &supervisor)
            outcome.compile = stage
            if let e = machine.startError { throw SandboxError("cannot start \(compile.argv.first ?? "the compiler")", errno: e) }
            guard stage.succeeded else { return outcome }  // the init ends the sandbox after a failed compile
            // Kept before the run stage starts: nothing of the snippet has run in the sandbox yet.
            if let cacheKey {
                compileCache?.store(cacheKey, from: sandbox, home: layout.config.home, output: compile.output,
                                    messages: stage.output)
            }
            open = machine.open
            switch try beginRunAfterCompile(sandbox) {
            case .started(let charged, let cache, let cpuBefore, let oomBefore):
                (memoryBefore, cacheBefore) = (charged, cache)
                runCounters = (cpuBefore, oomBefore)
            case .cannotFit(let charged):
                outcome.run = StageOutcome(waitStatus: nil, timedOut: false, oomKilled: true,
                                           output: OutputCollector(maxBytes: 0, maxLines: 0), wallNs: 0, cpuNs: 0,
                                           memoryPeakBytes: charged)
                return outcome
            }
        }
        sandbox.closeControl()
        let (stage, machine) = supervise(.run, limits: job.limits, open: open, memoryBefore: memoryBefore,
                                         cacheBefore: cacheBefore, countersBefore: runCounters, with: &supervisor)
        initLeftAlive = machine.initLeftAlive
        outcome.run = stage
        streamer?.finish()
        if let e = machine.startError {
            guard job.compile != nil else { throw SandboxError("cannot start \(job.argv.first ?? "the program")", errno: e) }
            // A compile that succeeded but left no program (`-fsyntax-only`, `-E`): the request's
            // doing, so a result, as a shell would give it (exit 127), not an internal error.
            var output = stage.output
            output.append(Array("codesand: cannot execute \(job.argv.first ?? "the program"): \(String(cString: strerror(e)))\n".utf8),
                          from: .stderr)
            outcome.run = StageOutcome(waitStatus: 127 << 8, timedOut: false, oomKilled: false, output: output,
                                       wallNs: stage.wallNs, cpuNs: stage.cpuNs, memoryPeakBytes: stage.memoryPeakBytes)
        }
        return outcome
    }

    /// The slot's ready sandbox if it was built from this run's layout on a base not too old
    /// (SandboxSlots.mayServeARun); else a plain one.
    private func takeSandbox() throws -> SandboxInstance {
        let ready = taken ?? slots.take(slot)
        taken = nil
        held = ready?.instance
        if let ready, ready.layout === layout, SandboxSlots.mayServeARun(ready.instance.baseBorn) { return ready.instance }
        return try startPlain()
    }

    /// Sets the first stage's limits. A pre-started interpreter can already hold more than a small
    /// memory limit (EBUSY): a plain sandbox then starts its program under the limit instead.
    private func applyFirstLimits(_ limits: LimitSet, to sandbox: SandboxInstance) throws -> SandboxInstance {
        do {
            try sandbox.beginStage(limits: limits)
            return sandbox
        } catch {
            guard sandbox.prestarted != nil else { throw error }
            let plain = try startPlain()
            try plain.beginStage(limits: limits)
            return plain
        }
    }

    /// Replaces the run's sandbox by a plain one, built in the slot's cgroup once it is emptied.
    private func startPlain() throws -> SandboxInstance {
        if let old = held {
            slots.giveBack(slot, old)
            held = nil
        }
        slots.clear(slot)
        let plain = try slots.spawn(slot, layout: layout)
        held = plain
        return plain
    }

    private enum RunStart {
        /// The program was told to start; what the compile left charged, counted out of its peak
        /// (of which `cache`: host files' page cache), and the CPU time and OOM kills before the word.
        case started(charged: Int64, cache: Int64, cpuBefore: UInt64, oomBefore: Int64)
        /// What the compile left (its files in the tmpfs, unreclaimable without swap) is more than
        /// the program's memory limit: it cannot start under it. A result (oom), not an error.
        case cannotFit(charged: Int64)
    }

    /// The run stage's beginning after a compile: what the compiler left (page cache, object
    /// files) is not the program's. The program's limits, then what is charged measured before the
    /// word that starts the program. The compiler's page cache is not forced out (that evicted the
    /// compiler and its headers from the host's page cache: every compile read them from disk
    /// again, ~40% more CPU for a g++ hello world): the kernel reclaims it if the limits or the
    /// program need the room, and the run's peak counts back what of it went (supervise).
    private func beginRunAfterCompile(_ sandbox: SandboxInstance) throws -> RunStart {
        sandbox.cgroup.drainChargeBatches()
        do {
            try sandbox.beginStage(limits: job.limits)
        } catch let e as SystemCallError where e.errno == EBUSY {
            return .cannotFit(charged: sandbox.cgroup.memoryUsage())
        }
        let charged = sandbox.cgroup.memoryUsage(), cache = sandbox.cgroup.hostFileCache()
        let cpuBefore = sandbox.cgroup.cpuNs(), oomBefore = sandbox.cgroup.oomKills()  // a quick OOM is the run's
        do {
            try JobHandOver.startRun(sandbox)
        } catch {
            throw SandboxError("starting the run after the compile failed: \(error)")
        }
        return .started(charged: charged, cache: cache, cpuBefore: cpuBefore, oomBefore: oomBefore)
    }

    /// One stage, from its counters to its outcome. `open`: the pipes not at their end yet.
    /// `countersBefore`: CPU time and OOM kills read before the stage's start: the init's setup (or
    /// the compile) is not this stage's, and an OOM kill right at its start is. `cacheBefore`: the
    /// host files' page cache in `memoryBefore` (after a compile: the compiler's); what of it is
    /// gone at the end made room for the stage, so its peak counts that back in.
    private func supervise(_ stage: StageMachine.Stage, limits: LimitSet, open: Set<StageMachine.Pipe>, memoryBefore: Int64,
                           cacheBefore: Int64 = 0, countersBefore: (cpu: UInt64, oom: Int64),
                           with supervisor: inout StageSupervisor) -> (StageOutcome, StageMachine) {
        let cgroup = supervisor.sandbox.cgroup
        let (cpuBefore, oomBefore) = countersBefore
        var machine = StageMachine(stage: stage, limits: limits, socketLimitBytes: layout.config.socketMemoryBytes,
                                   open: open, streams: stage == .run && streamer != nil,
                                   watchesSockets: supervisor.sandbox.mayHoldSockets, clock: clock)
        supervisor.cacheBaseline = cacheBefore
        supervisor.supervise(&machine, cpuBefore: cpuBefore)
        if machine.turnGivenBack { turn?.runIsIdle(false) }  // the next stage, or the run's end, has it
        // Page cache is pushed out only once the cgroup is at its limit: then (only) it is read again.
        let peak = cgroup.memoryPeak()
        let atLimit = cacheBefore > 0 && peak >= limits.memoryBytes - Self.nearLimitBytes
        let pushedOut = atLimit ? max(0, cacheBefore - cgroup.hostFileCache()) : 0
        let outcome = machine.outcome(cpuNs: cgroup.cpuNs() &- cpuBefore, oomKilled: cgroup.oomKills() > oomBefore,
                                      memoryPeakBytes: min(limits.memoryBytes, max(0, peak - memoryBefore + pushedOut)))
        return (outcome, machine)
    }

    /// How close to its limit a cgroup's peak must come for the kernel to have reclaimed page cache
    /// for it (its charges come in per-CPU batches of up to 64 pages).
    static let nearLimitBytes: Int64 = 2 << 20

    /// The run's one end: its sandbox goes back to the slot, to be torn down before the slot's next
    /// sandbox; its init is killed now (its namespace's processes die with it), unless the run
    /// ended cleanly: then its death, the namespaces' teardown, waits until after the reply.
    private func end() {
        if let held { slots.giveBack(slot, held, killingInit: !initLeftAlive) }
        held = nil
    }
}
