import CodesandCore
import CodesandProtocol
import Foundation
import Logging
import Synchronization

/// The LXD backend: each slot is a container of LXD's (LXDContainerPool), restored to its `clean`
/// snapshot by `prepare` — off the request path, right after each run — and used for one run:
/// the code pushed with the files API, the program exec'd as the sandbox user in its home with
/// stdin/stdout/stderr over websockets, codesand's own wall, CPU and output caps enforced while it
/// runs, every process of the run killed at once through the container's host cgroup.
public final class LXDBackend: SandboxBackend {
    public let name = "lxd"
    public let cgroupVersion: String
    let client: LXDClient
    let pool: LXDContainerPool
    private let sandbox: SandboxConfig
    private let logger: Logger
    /// Per slot: the host cgroups of its container when it is ready (restored, nothing run in it yet).
    private let ready: Mutex<[LXDHostCgroup?]>
    private let stopped = Atomic<Bool>(false)
    /// Strays of an earlier daemon are removed once, before the first container is made.
    private let cleanup: Task<Void, Never>

    public init(config: SandboxConfig, poolSize: Int, defaultLimits: LimitSet, logger: Logger) throws {
        try config.lxd.validateForBackend()
        guard FileManager.default.fileExists(atPath: config.lxd.socket) else {
            throw SandboxError("LXD's socket \(config.lxd.socket) is not there: is LXD running? (lxd.socket)")
        }
        self.sandbox = config
        self.logger = logger
        client = LXDClient(socketPath: config.lxd.socket, project: config.lxd.project)
        let spec = LXDInstanceSpec(lxd: config.lxd, home: config.home, tmpfsBytes: config.tmpfsBytes,
                                   tmpfsInodes: config.tmpfsInodes, limits: defaultLimits)
        let pool = LXDContainerPool(client: client, spec: spec, size: poolSize, logger: logger)
        self.pool = pool
        ready = Mutex(Array(repeating: nil, count: poolSize))
        cgroupVersion = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers") ? "v2" : "v1"
        cleanup = Task { await pool.removeStrays() }
    }

    public func prepare(slot: Int, prestart: PrestartSpec?) async throws {
        guard !stopped.load(ordering: .relaxed) else { throw CancellationError() }
        await cleanup.value
        ready.withLock { $0[slot] = nil }
        let cgroup = try await pool.makeReady(slot)
        guard !stopped.load(ordering: .relaxed) else { throw CancellationError() }
        ready.withLock { $0[slot] = cgroup }
    }

    public func run(_ job: SandboxJob, slot: Int, onOutput: (@Sendable (OutputChunk) -> Void)?) async throws -> SandboxOutcome {
        let container = pool.name(slot)
        let taken = ready.withLock { r in defer { r[slot] = nil }; return r[slot] }
        let cgroup: LXDHostCgroup
        if let taken { cgroup = taken } else { cgroup = try await pool.makeReady(slot) }
        let uid = sandbox.lxd.uid, gid = sandbox.lxd.gid
        try await client.push(job.code, to: "\(sandbox.home)/\(job.fileName)", in: container, uid: uid, gid: gid)
        var outcome = SandboxOutcome(compile: nil, run: nil)
        if let compile = job.compile {
            cgroup.setLimits(memoryBytes: compile.limits.memoryBytes, pids: compile.limits.pids + 1)
            let stage = try await stageRunner(container, cgroup, compile.argv, job.env, compile.limits, [], nil).run()
            outcome.compile = stage
            guard stage.succeeded, !Task.isCancelled else { return outcome }
        }
        cgroup.setLimits(memoryBytes: job.limits.memoryBytes, pids: job.limits.pids + 1)
        let streamer = onOutput.map { OutputStreamer(sink: $0) }
        outcome.run = try await stageRunner(container, cgroup, job.argv, job.env, job.limits, job.stdin, streamer).run()
        return outcome
    }

    private func stageRunner(_ container: String, _ cgroup: LXDHostCgroup, _ argv: [String], _ env: [String], _ limits: LimitSet,
                             _ stdin: [UInt8], _ streamer: OutputStreamer?) -> LXDStageRunner {
        LXDStageRunner(client: client, container: container, cgroup: cgroup,
                       command: LXDExecCommand(argv: argv, env: env, uid: sandbox.lxd.uid, gid: sandbox.lxd.gid, cwd: sandbox.home),
                       limits: limits, stdin: stdin, streamer: streamer)
    }

    /// Processes left in ready containers beyond their init: what runs left behind (0 on a clean pool).
    public func strayProcesses() -> [Int32]? {
        ready.withLock { $0.compactMap { $0 }.flatMap { $0.execProcesses() } }
    }

    /// Runs `argv` in `slot`'s ready container as the sandbox user, without a run's bookkeeping:
    /// for the languages' probes (is a program there, which version). The slot is not restored
    /// afterwards by this: call it before the pool starts, or on a slot the caller holds.
    public func probe(_ argv: [String], env: [String], slot: Int = 0) async -> String? {
        guard let cgroup = ready.withLock({ $0[slot] }) else { return nil }
        let limits = LimitSet(wallMs: 10_000, cpuMs: 10_000, memoryBytes: 1 << 30, pids: 256, outputBytes: 65536, outputLines: 100)
        guard let stage = try? await stageRunner(pool.name(slot), cgroup, argv, env, limits, [], nil).run(),
              stage.succeeded else { return nil }
        let t = stage.output.texts()
        return t.stdout + t.stderr
    }

    /// No more prepares; the containers stay (stopped by LXD or adopted by the next daemon).
    public func shutdown() {
        stopped.store(true, ordering: .relaxed)
        cleanup.cancel()
    }
}
