import CodesandProtocol
import Foundation
import Logging
import Synchronization

/// Who sent a request (from SO_PEERCRED), for logs and fairness.
public struct PeerInfo: Sendable, CustomStringConvertible {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32
    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }
    public var description: String { "uid=\(uid) pid=\(pid)" }
}

/// The daemon's core: checks a run request, waits for a slot, runs it, and keeps the counters.
public final class RunService: Sendable {
    public let config: CodesandConfig
    public let languages: LanguageTable
    public let backend: any SandboxBackend
    public let version: String
    private let scheduler: SlotScheduler
    public let board: SlotBoard
    private let logger: Logger
    private let started = ContinuousClock.now
    private let counters = Mutex(Counters())

    struct Counters {
        var total: Int64 = 0
        var byStatus: [String: Int64] = [:]
        var recentWallMs: [Int64] = []
    }

    public init(config: CodesandConfig, languages: LanguageTable, backend: any SandboxBackend, version: String, logger: Logger) {
        self.config = config
        self.languages = languages
        self.backend = backend
        self.version = version
        self.logger = logger
        self.scheduler = SlotScheduler(size: config.poolSize, maxQueue: config.queueMax, maxWaitMs: config.queueMaxWaitMs,
                                       startFree: false)
        self.board = SlotBoard(size: config.poolSize)
    }

    /// Prepares every slot in the background; each serves requests as soon as it is ready.
    public func start() {
        for slot in 0..<scheduler.size { refill(slot, resetting: false) }
    }

    /// Waits until every slot is ready (or `timeout` passes): for tests and benchmarks.
    public func waitUntilReady(timeout: Duration = .seconds(30)) async -> Bool {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if board.counts[SlotState.ready.rawValue] == scheduler.size { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
    }

    /// Resets and prepares `slot` off the request path, then hands it back to the scheduler.
    /// A failed prepare marks the slot broken and retries with backoff; it is never handed out broken.
    private func refill(_ slot: Int, resetting: Bool) {
        board.set(slot, resetting ? .resetting : .preparing)
        Task.detached { [backend, board, scheduler, logger] in
            var backoffMs: UInt64 = 100
            while true {
                let start = ContinuousClock.now
                do {
                    try await backend.prepare(slot: slot)
                    let d = ContinuousClock.now - start
                    if resetting { board.recordReset(ms: Double(d.components.attoseconds) / 1e15 + Double(d.components.seconds) * 1000) }
                    board.set(slot, .ready)
                    scheduler.release(slot)
                    return
                } catch is CancellationError {
                    return
                } catch {
                    board.set(slot, .broken)
                    board.recordFailure("\(error)")
                    logger.error("slot broken: cannot prepare its sandbox; retrying",
                                 metadata: ["slot": "\(slot)", "error": "\(error)", "retry_ms": "\(backoffMs)"])
                    try? await Task.sleep(for: .milliseconds(backoffMs))
                    backoffMs = min(backoffMs * 2, 30_000)
                }
            }
        }
    }

    /// Runs a snippet. Throws RPCError for bad requests and daemon failures; a program's failure is a result.
    public func run(_ params: RunParams, peer: PeerInfo) async throws(RPCError) -> RunResult {
        guard let language = languages.lookup(params.language) else {
            throw RPCError(.unknownLanguage, "unknown language \"\(params.language)\"",
                           data: .object(["known": .array(languages.names.map { .string($0) })]))
        }
        let limits = try LimitSet.resolve(params.limits, defaults: config.defaultLimits, max: config.maxLimits)
        let spec = language.spec
        var env = config.sandbox.env
        for (k, v) in spec.env { env[k] = v }
        let job = SandboxJob(
            argv: spec.argv(filePath: config.sandbox.home + "/" + spec.file, args: params.args ?? []),
            env: env.keys.sorted().map { "\($0)=\(env[$0]!)" }, fileName: spec.file,
            code: Array(params.code.utf8), stdin: Array((params.stdin ?? "").utf8), limits: limits)

        let key = "\(peer.uid)/\(params.requester ?? "")"
        let slot: Int
        do {
            slot = try await scheduler.acquire(key: key, retryHintMs: retryHint())
        } catch let busy as SlotScheduler.Busy {
            throw RPCError(.busy, "busy: \(busy.reason)", data: .object(["retry_after_ms": .int(busy.retryAfterMs)]))
        } catch {
            throw RPCError(.internalError, "the request was cancelled while waiting for a sandbox")
        }
        board.set(slot, .busy)
        // Whatever happens to the run, the slot is reset and prepared again before its next use.
        defer { refill(slot, resetting: true) }

        let outcome: SandboxOutcome
        do {
            outcome = try await backend.run(job, slot: slot)
        } catch {
            logger.error("sandbox failure", metadata: ["slot": "\(slot)", "error": "\(error)", "peer": "\(peer)"])
            throw RPCError(.internalError, "internal error: the sandbox failed (\(error)); the request may be retried")
        }
        let result = RunResult.build(from: outcome)
        record(result)
        var meta: Logger.Metadata = [
            "peer_uid": "\(peer.uid)", "peer_pid": "\(peer.pid)", "requester": "\(params.requester ?? "-")",
            "language": "\(spec.name)", "status": "\(result.status.rawValue)", "wall_ms": "\(result.wallMs)",
            "output_bytes": "\(outcome.output.keptBytes + outcome.output.droppedBytes)", "slot": "\(slot)",
        ]
        if config.logCode { meta["code"] = "\(params.code)" }
        logger.info("run", metadata: meta)
        return result
    }

    private func record(_ r: RunResult) {
        counters.withLock { c in
            c.total += 1
            c.byStatus[r.status.rawValue, default: 0] += 1
            c.recentWallMs.append(r.wallMs)
            if c.recentWallMs.count > 64 { c.recentWallMs.removeFirst(c.recentWallMs.count - 64) }
        }
    }

    /// A guess at when a slot frees up: the recent mean run time times the queue's depth per slot.
    private func retryHint() -> Int64 {
        let mean = counters.withLock { c in c.recentWallMs.isEmpty ? 100 : c.recentWallMs.reduce(0, +) / Int64(c.recentWallMs.count) }
        let depth = Int64(scheduler.queued / max(1, scheduler.size) + 1)
        return max(50, mean * depth)
    }

    public func status() -> StatusResult {
        let (total, byStatus) = counters.withLock { ($0.total, $0.byStatus) }
        let slots = board.counts
        let (p50, p99) = board.resetPercentiles
        return StatusResult(version: version, backend: backend.name, cgroup: backend.cgroupVersion, runsTotal: total,
                            uptimeS: Int64((ContinuousClock.now - started).components.seconds), runsByStatus: byStatus,
                            running: slots[SlotState.busy.rawValue] ?? 0, queued: scheduler.queued, poolSize: scheduler.size,
                            slots: slots, resetMsP50: p50, resetMsP99: p99, slotFailures: board.failures.count)
    }
}
