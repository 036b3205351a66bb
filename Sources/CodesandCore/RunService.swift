import CodesandProtocol
import Foundation
import Logging
import Synchronization

/// The daemon's core: checks a run request, waits for a slot, runs it, and keeps the numbers.
public final class RunService: Sendable {
    public let backend: any SandboxBackend
    public let version: String
    public let pool: SlotPool
    public let metrics = Metrics()
    private let logger: Logger
    private let started = ContinuousClock.now
    /// What a config reload may change while serving (limits, languages, sandboxes), switched at once.
    private let settings: Mutex<(config: CodesandConfig, languages: LanguageTable, generation: Int)>

    public init(config: CodesandConfig, languages: LanguageTable, backend: any SandboxBackend, version: String, logger: Logger) {
        self.settings = Mutex((config, languages, 0))
        self.backend = backend
        self.version = version
        self.logger = logger
        self.pool = SlotPool(size: config.poolSize, maxRunning: config.maxRunning, maxQueue: config.queueMax,
                             maxWaitMs: config.queueMaxWaitMs, backend: backend, metrics: metrics, logger: logger)
        pool.planner.update(specs: Self.prestartSpecs(config, languages))
    }

    static func prestartSpecs(_ config: CodesandConfig, _ languages: LanguageTable) -> [PrestartSpec] {
        languages.entries.compactMap { JobBuilder(config: config, spec: $0.spec).prestartSpec() }
    }

    public var config: CodesandConfig { settings.withLock { $0.config } }
    public var languages: LanguageTable { settings.withLock { $0.languages } }

    public func start() { pool.start() }
    public func waitUntilReady(timeout: Duration = .seconds(30)) async -> Bool { await pool.waitUntilReady(timeout: timeout) }
    /// No more runs: waiting requests fail with -32003.
    public func stop() { pool.stop() }

    /// Takes a re-read config, whose sandboxes the backend builds as `generation`. Returns the keys
    /// whose change needs a restart (kept as they were).
    public func reload(config new: CodesandConfig, languages: LanguageTable, generation: Int) -> [String] {
        settings.withLock { s in
            let old = s.config
            var kept: [String] = []
            var next = new
            if new.maxRunning != old.maxRunning { kept.append("pool.size") } else if new.poolSize != old.poolSize { kept.append("pool.spare") }
            (next.poolSize, next.maxRunning) = (old.poolSize, old.maxRunning)
            if new.queueMax != old.queueMax || new.queueMaxWaitMs != old.queueMaxWaitMs { kept.append("queue") }
            // The slots' identity stays; what sandboxes are built from may change (see switchLayout).
            for (key, changed) in [("sandbox.uid_base", new.sandbox.uidBase != old.sandbox.uidBase),
                                   ("sandbox.cgroup_name", new.sandbox.cgroupName != old.sandbox.cgroupName),
                                   ("sandbox.state_dir", new.sandbox.stateDir != old.sandbox.stateDir)] where changed {
                kept.append(key)
            }
            next.sandbox.uidBase = old.sandbox.uidBase
            next.sandbox.cgroupName = old.sandbox.cgroupName
            next.sandbox.stateDir = old.sandbox.stateDir
            if new.socketPath != old.socketPath || new.socketGroup != old.socketGroup || new.socketMode != old.socketMode {
                kept.append("socket")
            }
            // The socket's server reads these once, at start.
            if new.maxMessageBytes != old.maxMessageBytes || new.maxConnections != old.maxConnections
                || new.maxConnectionsPerUID != old.maxConnectionsPerUID {
                kept.append("rpc")
            }
            s = (next, languages, generation)
            pool.planner.update(specs: Self.prestartSpecs(next, languages))
            return kept
        }
    }

    /// Runs a snippet. Throws RPCError for bad requests and daemon failures; a program's failure is a result.
    /// `onOutput` receives the output as it arrives when the request asked for `stream`.
    /// Work a run leaves for after its reply is on its way: the run's log line and its slot's
    /// reset. The server passes its event loop's queue (with a backend that never blocks, the task
    /// that answers runs on that loop, so queued work runs once the reply is written, unless the
    /// task waits again first: a batch, a retry); `{ $0() }` does it at once.
    public typealias AfterReply = @Sendable (@escaping @Sendable () -> Void) -> Void

    public func run(_ params: RunParams, peer: PeerInfo,
                    onOutput: (@Sendable (OutputChunk) -> Void)? = nil,
                    afterReply: @escaping AfterReply = { $0() }) async throws(RPCError) -> RunResult {
        let received = ContinuousClock.now
        let (config, languages, generation) = settings.withLock { ($0.config, $0.languages, $0.generation) }
        guard let language = languages.lookup(params.language) else {
            throw RPCError(.unknownLanguage, "unknown language \"\(params.language)\"",
                           data: .object(["known": .array(languages.names.map { .string($0) })]))
        }
        let spec = language.spec
        var job = try JobBuilder(config: config, spec: spec).job(for: params)
        job.generation = generation
        job.compile?.version = language.version

        let key = "\(peer.uid)/\(params.requester ?? "")"
        var (slot, outcome): (Int, SandboxOutcome)
        var attempts = 0
        while true {
            attempts += 1
            do {
                (slot, outcome) = try await runInSlot(job, key: key, language: spec.name,
                                                      onOutput: params.stream == true ? onOutput : nil, afterReply: afterReply)
                break
            } catch {
                switch error {
                case .refused(let error):
                    throw error
                case .unavailable(let slot, let why) where attempts < Self.maxAttempts:
                    // Nothing of the job ran (its slot's machine went away): another slot takes it.
                    logger.warning("sandbox unavailable, the run goes to another slot", metadata: ["slot": "\(slot)", "error": "\(why)"])
                case .unavailable(let slot, let why):
                    logger.error("sandbox failure", metadata: ["slot": "\(slot)", "error": "\(why)", "peer": "\(peer)"])
                    throw RPCError(.internalError, "internal error: no sandbox could take the run (\(why)); the request may be retried")
                case .failed(let slot, let error):
                    logger.error("sandbox failure", metadata: ["slot": "\(slot)", "error": "\(error)", "peer": "\(peer)"])
                    throw RPCError(.internalError, "internal error: the sandbox failed (\(error)); the request may be retried")
                }
            }
        }
        if Task.isCancelled {
            metrics.recordKill("cancelled")
            throw RPCError(.shuttingDown, "the run was stopped before it ended: the daemon is shutting down")
        }
        if job.prestart != nil { metrics.recordPrestart(language: spec.name, hit: outcome.prestarted) }
        if job.compile?.output.isEmpty == false, outcome.compile != nil {
            metrics.recordCompileCache(language: spec.name, hit: outcome.compileCached)
        }
        let result = RunResult.build(from: outcome)
        let latency = ContinuousClock.now - received
        metrics.recordRun(language: spec.name, status: result.status.rawValue,
                          latencySeconds: Double(latency.components.seconds) + Double(latency.components.attoseconds) / 1e18,
                          wallMs: result.wallMs)
        var meta: Logger.Metadata = [
            "peer_uid": "\(peer.uid)", "peer_pid": "\(peer.pid)", "requester": "\(params.requester ?? "-")",
            "language": "\(spec.name)", "status": "\(result.status.rawValue)", "wall_ms": "\(result.wallMs)",
            "output_bytes": "\(result.stdout.utf8.count + result.stderr.utf8.count)", "slot": "\(slot)",
        ]
        if config.logCode { meta["code"] = "\(params.code)" }
        afterReply { [logger, meta] in logger.info("run", metadata: meta) }
        return result
    }

    /// Runs taken to another slot when the one they got cannot take them (SandboxUnavailable).
    static let maxAttempts = 3

    private enum SlotRunError: Error {
        case refused(RPCError)
        case unavailable(slot: Int, String)
        case failed(slot: Int, any Error)
    }

    /// One slot's try: waits for a slot and runs the job in it; the slot is reset afterwards, whatever happens.
    private func runInSlot(_ job: SandboxJob, key: String, language: String, onOutput: (@Sendable (OutputChunk) -> Void)?,
                           afterReply: AfterReply) async throws(SlotRunError) -> (Int, SandboxOutcome) {
        let slot: Int
        do { slot = try await acquireSlot(key: key, job: job, language: language) } catch { throw .refused(error) }
        let turn = pool.turn()
        defer { afterReply { [pool] in pool.finished(slot, turn: turn) } }
        do {
            return (slot, try await backend.run(job, slot: slot, turn: turn, onOutput: onOutput))
        } catch let e as SandboxUnavailable where !Task.isCancelled {
            throw .unavailable(slot: slot, e.reason)
        } catch {
            throw .failed(slot: slot, error)
        }
    }

    private func acquireSlot(key: String, job: SandboxJob, language: String) async throws(RPCError) -> Int {
        // A guess at when a slot frees up: the recent mean run time times the queue's depth per slot.
        let hint = max(50, metrics.recentMeanWallMs * Int64(pool.scheduler.queued / max(1, pool.size) + 1))
        do {
            return try await pool.acquire(key: key, prestart: job.prestart?.language,
                                          plainLanguage: job.prestart == nil ? language : nil, retryHintMs: hint)
        } catch let busy as SlotScheduler.Busy {
            throw RPCError(.busy, "busy: \(busy.reason); retry after \(busy.retryAfterMs) ms",
                           data: .object(["retry_after_ms": .int(busy.retryAfterMs)]))
        } catch let broken as SlotScheduler.Unavailable {
            // Nothing will free up: waiting (or "busy, retry soon") would only delay the same failure.
            throw RPCError(.internalError, "internal error: no sandbox can be prepared, \(broken). Every run fails at once "
                           + "until the daemon's administrator fixes that and reloads the pool (`codesand pool reload` or SIGHUP); "
                           + "broken slots also retry by themselves, at most every \(SlotPool.maxBackoffMs / 1000) s")
        } catch is SlotScheduler.Stopped {
            throw RPCError(.shuttingDown, "the daemon is shutting down; retry after it restarts")
        } catch {
            throw RPCError(.internalError, "the request was cancelled while waiting for a sandbox")
        }
    }

    public func status() -> StatusResult {
        let slots = pool.board.counts
        let (p50, p99) = pool.board.resetPercentiles
        var status = StatusResult(version: version, backend: backend.name, cgroup: backend.cgroupVersion, runsTotal: metrics.runsTotal,
                                  uptimeS: uptimeSeconds, runsByStatus: metrics.runsByStatus,
                                  running: slots[SlotState.busy.rawValue] ?? 0, queued: pool.scheduler.queued, poolSize: pool.size,
                                  slots: slots, resetMsP50: p50, resetMsP99: p99, slotFailures: pool.board.failures.count,
                                  zygotes: backend.zygoteLanguages)
        status.pid = ProcessInfo.processInfo.processIdentifier
        status.maxRunning = pool.scheduler.maxRunning
        status.poolError = pool.scheduler.unavailable.map { "no sandbox can be prepared, \($0)" }
        let now = ContinuousClock.now
        status.brokenSlots = pool.board.brokenSlots.map { b in
            let left = (b.retryAt - now).components
            return BrokenSlotInfo(slot: b.slot, error: b.error, failures: b.failures,
                                  retryInMs: max(0, left.seconds * 1000 + left.attoseconds / 1_000_000_000_000_000))
        }
        status.strayProcesses = backend.strayProcesses()?.count
        status.sandboxCgroups = backend.slotCgroupParents
        status.members = backend.slotMembers().map { pool.board.counts(by: $0) }
        return status
    }

    public func metricsText() -> String {
        metrics.render(slots: pool.board.counts, queued: pool.scheduler.queued, uptimeSeconds: uptimeSeconds,
                       slotFailures: pool.board.failures.count, poolUnavailable: pool.scheduler.unavailable != nil)
    }

    private var uptimeSeconds: Int64 { Int64((ContinuousClock.now - started).components.seconds) }
}
