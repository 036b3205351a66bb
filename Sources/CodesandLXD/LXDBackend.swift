import CodesandCore
import CodesandLinux
import CodesandProtocol
import Foundation
import Logging
import Synchronization

/// The LXD backend: each slot is a container of LXD's (LXDContainerPool), restored to its `clean`
/// snapshot by `prepare` — off the request path, right after each run — and used for one run:
/// the code pushed with the files API, the program exec'd as the sandbox user in its home with
/// stdin/stdout/stderr over websockets, codesand's own wall, CPU and output caps enforced while it
/// runs, every process of the run killed at once through the container's host cgroup — or, for a
/// remote LXD (`lxd.url`, over TLS), through LXD's API (LXDRemoteControl). A prepare with a
/// PrestartSpec also starts the language's launcher in the container (LXDPrestart).
public final class LXDBackend: SandboxBackend {
    public let name = "lxd"
    public let cgroupVersion: String
    let client: LXDClient
    let pool: LXDContainerPool
    private let sandbox: SandboxConfig
    private let logger: Logger
    /// Per slot: its container's run control and waiting launcher when it is ready (restored, nothing run in it yet).
    private let ready: Mutex<[ReadySlot?]>
    private let launchers: Launchers
    private let stopped = Atomic<Bool>(false)
    /// Strays of an earlier daemon are removed once, before the first container is made.
    private let cleanup: Task<Void, Never>
    private let prober: LXDProber
    /// Bumped by a reload that changes what containers are made from.
    private let generation = Mutex(0)

    public init(config: SandboxConfig, poolSize: Int, defaultLimits: LimitSet, logger: Logger) throws {
        try config.lxd.validateForBackend()
        guard config.lxd.isRemote || FileManager.default.fileExists(atPath: config.lxd.socket) else {
            throw SandboxError("LXD's socket \(config.lxd.socket) is not there: is LXD running? (lxd.socket)")
        }
        self.sandbox = config
        self.logger = logger
        client = LXDClient(transport: try LXDTransport.forConfig(config.lxd), project: config.lxd.project)
        let spec = LXDInstanceSpec(lxd: config.lxd, home: config.home, tmpfsBytes: config.tmpfsBytes,
                                   tmpfsInodes: config.tmpfsInodes, limits: defaultLimits)
        let pool = LXDContainerPool(client: client, spec: spec, size: poolSize, logger: logger)
        self.pool = pool
        ready = Mutex(Array(repeating: nil, count: poolSize))
        launchers = Launchers(config: config, logger: logger)
        cgroupVersion = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers") ? "v2" : "v1"
        cleanup = Task {
            await pool.removeStrays()
            if (try? await pool.watch.clustered()) == true { pool.watch.start() }
        }
        prober = LXDProber(pool: pool)
    }

    /// The backend, once LXD has answered and trusts us: a daemon starts with a clear error (the
    /// server's fingerprint, an untrusted client certificate, LXD unreachable), not broken slots.
    public static func connect(config: SandboxConfig, poolSize: Int, defaultLimits: LimitSet, logger: Logger) async throws -> LXDBackend {
        let backend = try LXDBackend(config: config, poolSize: poolSize, defaultLimits: defaultLimits, logger: logger)
        try await backend.client.checkTrusted()
        return backend
    }

    public func prepare(slot: Int, prestart: PrestartSpec?) async throws {
        guard !stopped.load(ordering: .relaxed) else { throw CancellationError() }
        await cleanup.value
        ready.withLock { r in defer { r[slot] = nil }; return r[slot] }?.launcher?.discard()
        let cgroup = try await pool.makeReady(slot)
        await cgroup.ready()
        let launcher = await startLauncher(prestart, slot: slot)
        guard !stopped.load(ordering: .relaxed) else {
            launcher?.discard()
            throw CancellationError()
        }
        ready.withLock { $0[slot] = ReadySlot(cgroup: cgroup, launcher: launcher) }
        pool.watch.slotReady(slot)
    }

    /// The launcher of `spec`'s language, exec'd and waiting in `slot`'s fresh container; nil when
    /// there is none to start or it cannot start (runs then go the plain way: slower, never failed).
    private func startLauncher(_ spec: PrestartSpec?, slot: Int) async -> LXDPrestarted? {
        guard let spec, let resolved = launchers.resolve(spec), !resolved.onlyAsZygote else { return nil }
        do {
            return try await LXDPrestarted.start(client, container: pool.name(slot), spec: resolved, uid: sandbox.lxd.uid,
                                                 gid: sandbox.lxd.gid, home: sandbox.home)
        } catch {
            logger.warning("pre-start failed; the slot's runs start the plain way",
                           metadata: ["slot": "\(slot)", "language": "\(spec.language)", "error": "\(error)"])
            return nil
        }
    }

    public func run(_ job: SandboxJob, slot: Int, onOutput: (@Sendable (OutputChunk) -> Void)?) async throws -> SandboxOutcome {
        let container = pool.name(slot)
        let taken = ready.withLock { r in defer { r[slot] = nil }; return r[slot] }
        pool.watch.slotTaken(slot)
        let cgroup: any LXDRunControl
        var launcher = taken?.launcher
        defer { launcher?.discard() }
        let uid = sandbox.lxd.uid, gid = sandbox.lxd.gid
        // Until the code is in, nothing of the job ran: a failure here (the container's cluster
        // member gone) sends the run to another slot.
        do {
            if let taken {
                cgroup = taken.cgroup
            } else {
                let made = try await pool.makeReady(slot)
                await made.ready()
                cgroup = made
            }
            try await pool.watch.guarding(container) { [client, sandbox] in
                try await client.push(job.code, to: "\(sandbox.home)/\(job.fileName)", in: container, uid: uid, gid: gid)
            }
        } catch let e as SandboxUnavailable {
            throw e
        } catch where !(error is CancellationError) && !Task.isCancelled {
            throw SandboxUnavailable("container \(container) could not take the run: \(error)")
        }
        var outcome = SandboxOutcome(compile: nil, run: nil)
        // Whether the run was pre-started is decided here, and only here: the waiting launcher must
        // be of the run's language, alive, and fit in the run's memory limit (else it is let go
        // first, and nothing of it is left for the plain exec to see).
        if let l = launcher {
            var serves = job.compile == nil && job.prestart?.language == l.language && !l.hasExited
            if serves { serves = try await cgroup.setLimits(memoryBytes: job.limits.memoryBytes, pids: job.limits.pids + 1) }
            if !serves {
                l.discard()
                await cgroup.killExec()
                launcher = nil
            }
        }
        if let compile = job.compile {
            try await cgroup.setLimits(memoryBytes: compile.limits.memoryBytes, pids: compile.limits.pids + 1)
            let runner = stageRunner(container, cgroup, compile.argv, job.env, compile.limits, [], nil)
            let stage = try await firstStage(container) { try await runner.run() }
            outcome.compile = stage
            guard stage.succeeded, !Task.isCancelled else { return outcome }
        }
        try await cgroup.setLimits(memoryBytes: job.limits.memoryBytes, pids: job.limits.pids + 1)
        let streamer = onOutput.map { OutputStreamer(sink: $0) }
        // A waiting launcher reads its program's argv from stdin first (the language matched, so job.prestart is set).
        let handOver = try launcher.map { _ in try LXDPrestarted.handOver(job.prestart?.argv ?? job.argv) } ?? []
        var runner = stageRunner(container, cgroup, job.argv, job.env, job.limits, handOver + job.stdin, streamer)
        runner.started = launcher
        outcome.prestarted = launcher != nil
        let program = runner
        outcome.run = job.compile == nil ? try await firstStage(container) { try await program.run() } : try await program.run()
        return outcome
    }

    /// The job's first exec, refused by LXD (no operation made, so nothing of the job ran: e.g. its
    /// cluster member is shutting down): the run may go to another slot.
    private func firstStage(_ container: String, _ body: () async throws -> StageOutcome) async throws -> StageOutcome {
        do {
            return try await body()
        } catch let e as LXDError where e.what == "POST " + LXDPath.exec(container) && !Task.isCancelled {
            throw SandboxUnavailable("container \(container) could not start the program: \(e)")
        }
    }

    private func stageRunner(_ container: String, _ cgroup: any LXDRunControl, _ argv: [String], _ env: [String], _ limits: LimitSet,
                             _ stdin: [UInt8], _ streamer: OutputStreamer?) -> LXDStageRunner {
        let command = LXDExecCommand(argv: argv, env: env, uid: sandbox.lxd.uid, gid: sandbox.lxd.gid, cwd: sandbox.home)
        return LXDStageRunner(client: client, container: container, cgroup: cgroup, command: cgroup.command(command),
                       limits: limits, stdin: stdin, streamer: streamer)
    }

    /// Per slot, the cluster member its container is on; nil on a standalone LXD.
    public func slotMembers() -> [String?]? { pool.slotMembers() }

    public func observe(_ events: any SlotEvents) { pool.watch.observe(events) }

    /// A reload's image or source snapshot must be there: else it is refused and the old containers
    /// keep serving (a slot replaced first would be lost, the rest would follow).
    private func checkSource(_ lxd: LXDConfig) async throws {
        let path: String
        if !lxd.source.isEmpty {
            let parts = lxd.source.split(separator: "/", maxSplits: 1).map(String.init)
            path = parts.count == 2 ? LXDPath.snapshots(parts[0]) + "/" + LXDPath.component(parts[1]) : LXDPath.instance(lxd.source)
        } else if LXDInstanceSpec.isFingerprint(lxd.image) {
            path = "/1.0/images/" + LXDPath.component(lxd.image)
        } else {
            path = "/1.0/images/aliases/" + LXDPath.component(lxd.image)
        }
        do {
            _ = try await client.call(.GET, path)
        } catch let e as LXDError where e.isNotFound {
            throw SandboxError("LXD has no \(lxd.source.isEmpty ? "image \"\(lxd.image)\"" : "source \"\(lxd.source)\"") (lxd.image / lxd.source)")
        }
    }

    /// After a reload: true until `slot`'s container has been replaced by one of the new spec.
    public func isOutdated(slot: Int) -> Bool? { pool.isOutdated(slot) }

    /// Processes left in ready containers beyond their init: what runs left behind (0 on a clean pool).
    /// A slot with a waiting launcher is not counted: its exec processes are the launcher's (the
    /// restore before it started ended every earlier one).
    public func strayProcesses() -> [Int32]? {
        ready.withLock { $0.compactMap { $0 }.filter { $0.launcher == nil }.flatMap { $0.cgroup.strays() } }
    }

    /// A reload: containers are made from the new spec from now on — each slot's container is
    /// replaced at its next prepare (PoolReloader recycles them one by one while serving). What
    /// names LXD and the pool (socket, project, prefix) needs a restart.
    public func addGeneration(_ config: CodesandConfig) async throws -> Int {
        let new = config.sandbox
        guard new.backend == "lxd" else {
            throw SandboxError("sandbox.backend cannot change from \"lxd\" on a reload: restart the daemon")
        }
        try new.lxd.validateForBackend()
        for (key, changed) in [("lxd.socket", new.lxd.socket != sandbox.lxd.socket), ("lxd.url", new.lxd.url != sandbox.lxd.url),
                               ("lxd.client_cert", new.lxd.clientCert != sandbox.lxd.clientCert),
                               ("lxd.client_key", new.lxd.clientKey != sandbox.lxd.clientKey),
                               ("lxd.fingerprint", new.lxd.fingerprint != sandbox.lxd.fingerprint),
                               ("lxd.project", new.lxd.project != sandbox.lxd.project),
                               ("lxd.prefix", new.lxd.prefix != sandbox.lxd.prefix),
                               ("lxd.members", new.lxd.members != sandbox.lxd.members), ("sandbox.home", new.home != sandbox.home)] where changed {
            throw SandboxError("\(key) cannot change on a reload: restart the daemon")
        }
        try await checkSource(new.lxd)
        let spec = LXDInstanceSpec(lxd: new.lxd, home: new.home, tmpfsBytes: new.tmpfsBytes, tmpfsInodes: new.tmpfsInodes,
                                   limits: config.defaultLimits)
        return generation.withLock { g in
            if pool.update(spec) { g += 1 }
            return g
        }
    }

    /// Whether `program` is an executable file in the containers' image (asked in the probe container).
    public func isExecutable(_ program: String) async -> Bool {
        guard program.hasPrefix("/") else { return false }
        // The path is an argument of the shell, never part of its script.
        return await probe(["/bin/sh", "-c", "test -f \"$1\" && test -x \"$1\" && echo yes", "sh", program], env: []) == "yes\n"
    }

    /// Runs `argv` in the probe container (PREFIX-probe, made from the same spec as the slots'),
    /// as the sandbox user: the languages' versions, as the image has them.
    public func probe(_ argv: [String], env: [String]) async -> String? {
        await prober.probe { [self] cgroup in
            let limits = LimitSet(wallMs: 10_000, cpuMs: 10_000, memoryBytes: 1 << 30, pids: 256, outputBytes: 65536, outputLines: 100)
            guard let stage = try? await stageRunner(pool.name(pool.probeIndex), cgroup, argv, env, limits, [], nil).run(),
                  stage.succeeded else { return nil }
            let t = stage.output.texts()
            return t.stdout + t.stderr
        }
    }

    /// No more prepares; what runs is killed and the containers are stopped (the next daemon
    /// adopts them: restores and starts them).
    public func shutdown() async {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        cleanup.cancel()
        pool.watch.stop()
        for slot in ready.withLock({ r in defer { r = r.map { _ in nil } }; return r }) { slot?.launcher?.discard() }
        await withTaskGroup(of: Void.self) { group in
            for slot in 0...pool.size {
                let name = pool.name(slot)
                guard pool.watch.unreachable(name) == nil else { continue }  // on a member gone: a request would hang 10 s
                group.addTask { [client] in
                    _ = try? await client.run(.PUT, LXDPath.state(name), json: .object(["action": .string("stop"), "force": .bool(true)]),
                                              timeout: .seconds(20))
                }
            }
        }
    }
}

/// A ready slot: its container's host cgroups, and the interpreter waiting in it, if any.
private struct ReadySlot: Sendable {
    var cgroup: any LXDRunControl
    var launcher: LXDPrestarted?
}

/// The probe container, made ready once and used by one probe at a time.
actor LXDProber {
    private let pool: LXDContainerPool
    private var cgroup: (any LXDRunControl)?
    private var digest = ""

    init(pool: LXDContainerPool) { self.pool = pool }

    func probe(_ body: @Sendable (any LXDRunControl) async -> String?) async -> String? {
        let spec = pool.spec.digest
        if cgroup == nil || digest != spec {
            guard let ready = try? await pool.makeReady(pool.probeIndex) else { return nil }
            await ready.ready()
            cgroup = ready
            digest = spec
        }
        return await body(cgroup!)
    }
}
