import CSandbox
import CodesandCore
import CodesandProtocol
import Foundation
import Glibc
import Logging
import Synchronization

/// The native backend: a warm pool of sandboxes (new namespaces, private tmpfs mounts, a per-slot
/// cgroup) built by the C init (sandbox_init.c) before requests arrive, each used for one run.
public final class NativeBackend: SandboxBackend {
    public let name = "native"
    public var cgroupVersion: String { driver.version }
    private let driver: CgroupDriver
    /// Layouts by generation (a reload adds one, see addLayout). New sandboxes are prepared from the
    /// newest; a run uses its job's generation, so it never mixes two configurations.
    private let layouts: Mutex<(newest: Int, byGeneration: [Int: SandboxLayout])>
    /// The slots (and the probe slot, the last): their cgroups and sandboxes.
    private let slots: SandboxSlots
    private let probeLock = Mutex(())
    private let poolSize: Int
    private let config: SandboxConfig
    private let logger: Logger
    private let stopped = Atomic<Bool>(false)
    /// Held for the daemon's life: a second daemon with the same cgroup name would kill our sandboxes.
    private let lockFD: Int32
    /// Compiled programs kept between runs (nil: sandbox.compile_cache_* is 0).
    let compileCache: CompileCache?

    /// Detects the cgroup version, creates the slots' cgroups (emptying leftovers of an earlier
    /// daemon) and the state directory.
    public convenience init(config: SandboxConfig, poolSize: Int, defaultLimits: LimitSet, logger: Logger) throws {
        try self.init(config: config, poolSize: poolSize, defaultLimits: defaultLimits,
                      driver: CgroupDetect.driver(name: config.cgroupName, socketMemoryBytes: config.socketMemoryBytes),
                      logger: logger)
    }

    init(config: SandboxConfig, poolSize: Int, defaultLimits: LimitSet, driver: CgroupDriver, logger: Logger) throws {
        signal(SIGPIPE, SIG_IGN)  // a sandbox that closes its stdin must not kill the daemon
        try Self.checkUIDsAreFree(base: config.uidBase, count: poolSize + 1)
        self.config = config
        self.driver = driver
        self.logger = logger
        self.poolSize = poolSize
        self.layouts = Mutex((0, [0: try SandboxLayout(config: config, poolSize: poolSize + 1, logger: logger)]))
        self.lockFD = try Self.lockSlots(config: config)
        driver.removeStale(keeping: poolSize + 1)
        let cgroups = try (0...poolSize).map { try driver.slot($0) }
        for (slot, cg) in cgroups.enumerated() { Self.recover(slot: slot, cgroup: cg, logger: logger) }
        if !Self.hasCapability(24) {  // CAP_SYS_RESOURCE: often withheld from root in containers
            logger.warning("no CAP_SYS_RESOURCE: sandbox inits cannot exempt themselves from the OOM killer, so the OOM killer may pick an init before its program")
        }
        slots = SandboxSlots(cgroups: cgroups, uidBase: config.uidBase, defaultLimits: defaultLimits, logger: logger)
        compileCache = CompileCache.open(config: config, logger: logger)
    }

    public func prepare(slot: Int, prestart: PrestartSpec?) async throws {
        guard !stopped.load(ordering: .relaxed) else { throw CancellationError() }
        let fresh: ReadySandbox
        let layout = self.layout
        do {
            fresh = try await onThread("cs-prepare-\(slot)") { [slots] in
                slots.clear(slot)  // what the last run left is torn down: the slot's cgroup is empty, at its page cache
                let instance = try slots.spawn(slot, layout: layout, prestart: prestart)
                instance.countAtReady()
                return ReadySandbox(instance, layout: layout)
            }
        } catch {
            if stopped.load(ordering: .relaxed) { throw CancellationError() }  // its cgroup is gone: not a failure
            // The C init names only the step and errno; a source removed while serving is the usual cause.
            if let gone = layout.missingSource() { throw SandboxError("\(gone) (\(error))") }
            throw error
        }
        guard slots.setReady(slot, fresh) else { throw CancellationError() }
    }

    /// A run's supervision and every wait of a prepare are on BlockingThreads; what startIfReady
    /// does on the caller's thread are a few reads and writes of held files and one pipe write that fits.
    public var neverBlocksItsCaller: Bool { true }

    public func run(_ job: SandboxJob, slot: Int, onOutput: (@Sendable (OutputChunk) -> Void)?) async throws -> SandboxOutcome {
        try await run(job, slot: slot, turn: nil, onOutput: onOutput)
    }

    public func run(_ job: SandboxJob, slot: Int, turn: RunTurn?,
                    onOutput: (@Sendable (OutputChunk) -> Void)?) async throws -> SandboxOutcome {
        let cancelFD = cs_eventfd()
        guard cancelFD >= 0 else { throw SandboxError("eventfd", errno: errno) }
        defer { close(cancelFD) }
        // One run, one configuration: the generation its job was built for.
        let layout = layouts.withLock { $0.byGeneration[job.generation] ?? $0.byGeneration[$0.newest]! }
        let run = SandboxRun(job: job, slot: slot, slots: slots, layout: layout, cancelFD: cancelFD,
                             streamer: onOutput.map { OutputStreamer(sink: $0) }, compileCache: compileCache, turn: turn)
        // Here, when nothing of it blocks: the init reads its job while the run's thread wakes.
        run.startIfReady()
        return try await withTaskCancellationHandler {
            // A thread of its own: the supervisor blocks in poll(), which must not starve Swift's pool.
            try await onThread("cs-run-\(slot)") { try run.execute() }
        } onCancel: {
            var one: UInt64 = 1
            _ = write(cancelFD, &one, 8)
        }
    }

    private var layout: SandboxLayout { layouts.withLock { $0.byGeneration[$0.newest]! } }

    /// Adds a layout built from `config` (a reload: another image, other mounts or caps) and
    /// returns its generation: jobs of that generation run in sandboxes built from it, and new
    /// sandboxes are prepared from it. Throws, changing nothing, if it is invalid.
    public func addLayout(_ config: SandboxConfig) throws -> Int {
        let next = try SandboxLayout(config: config, poolSize: poolSize + 1, logger: logger)
        return layouts.withLock { l in
            l.newest += 1
            l.byGeneration[l.newest] = next
            // Two generations live at once at most: runs that started before a reload, and new ones.
            l.byGeneration = l.byGeneration.filter { $0.key >= l.newest - 1 }
            return l.newest
        }
    }

    /// The zygotes running for the newest layout: language and pid.
    public var zygotes: [(language: String, pid: pid_t)] { layout.zygotes.running }
    public var zygoteLanguages: [String] { zygotes.map(\.language).sorted() }
    /// The plain spawner's pid while it runs (the zygote of sandboxes with no pre-started interpreter).
    var plainSpawnerPID: pid_t? { layout.zygotes.plainSpawnerPID }

    public func addGeneration(_ config: CodesandConfig) async throws -> Int { try addLayout(config.sandbox) }

    /// True when `path` is an executable in the sandboxes' system (the host's, or the image's).
    public func isExecutable(_ path: String) -> Bool { layout.isExecutable(path) }

    /// The host's programs answer on the host (quicker than a sandbox); an image's run in a sandbox
    /// of their own (the probe slot).
    public func probe(_ argv: [String], env: [String]) async -> String? {
        let layout = self.layout
        // It waits for the program: on a thread of the backend's, never on the caller's executor
        // (a request's task runs on its connection's event loop).
        if layout.config.rootfs == "host" { return try? await onThread("cs-probe") { HostCommand.output(argv) } }
        return try? await onThread("cs-probe") { [self] () -> String? in
            probeLock.withLock { _ in
                defer { slots.clear(poolSize) }
                let limits = LimitSet(wallMs: 10_000, cpuMs: 10_000, memoryBytes: 1 << 30, pids: 256, outputBytes: 65536, outputLines: 100)
                let job = SandboxJob(argv: argv, env: env, fileName: "probe", code: [], stdin: [], limits: limits)
                guard let run = try? SandboxRun(job: job, slot: poolSize, slots: slots, layout: layout, cancelFD: -1).execute().run,
                      run.succeeded else { return nil }
                let t = run.output.texts()
                return t.stdout + t.stderr
            }
        }
    }

    /// Kills what an earlier daemon (killed, crashed) left running in a slot's cgroup.
    static func recover(slot: Int, cgroup: SlotCgroup, logger: Logger) {
        let leftovers = cgroup.processes()
        guard !leftovers.isEmpty else { return }
        let start = monotonicNs()
        let emptied = cgroup.killAll(timeoutMs: 5000)
        let meta: Logger.Metadata = ["slot": "\(slot)", "processes": "\(leftovers.count)",
                                     "ms": "\((monotonicNs() - start) / 1_000_000)"]
        if emptied {
            logger.notice("killed the leftovers of an earlier daemon", metadata: meta)
        } else {
            logger.error("leftovers of an earlier daemon survive in a slot cgroup", metadata: meta)
        }
    }

    /// Takes `state_dir/<cgroup_name>.lock`, so two daemons never share (and kill) the same slot cgroups.
    static func lockSlots(config: SandboxConfig) throws -> Int32 {
        let path = "\(config.stateDir)/\(config.cgroupName).lock"
        let fd = try sys("open", path) { open(path, O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0o600) }
        // A daemon that just stopped may hold it a moment longer (through a sandbox it was cloning).
        var locked = false
        for _ in 0..<100 {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { locked = true; break }
            usleep(20_000)
        }
        if !locked {
            let holder = (try? FileIO.read(path))?.trimmingCharacters(in: " \n") ?? "?"
            close(fd)
            throw SandboxError("another codesandd (pid \(holder)) already uses the sandbox cgroups named \"\(config.cgroupName)\"; "
                               + "stop it, or give this one its own sandbox.cgroup_name")
        }
        ftruncate(fd, 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return fd
    }

    /// Whether the daemon's effective capability set holds `cap` (its inits inherit that set).
    static func hasCapability(_ cap: Int) -> Bool {
        let status = (try? FileIO.read("/proc/self/status")) ?? ""
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
              let mask = UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) else { return true }
        return mask & (1 << UInt64(cap)) != 0
    }

    /// Sandbox uids must belong to nobody on the host, or a sandbox could touch that user's files.
    static func checkUIDsAreFree(base: UInt32, count: Int) throws {
        for i in 0..<UInt32(count) {
            if let pw = getpwuid(base + i) {
                throw SandboxError("sandbox uid \(base + i) belongs to host user \(String(cString: pw.pointee.pw_name)); change sandbox.uid_base")
            }
        }
    }

    /// Processes in the slots' cgroups now, beyond the ready sandboxes' own (their init and any
    /// interpreter started in advance): what runs left behind.
    public func leftoverProcesses() -> [pid_t] {
        let ready = slots.readySlots
        return slots.cgroups.indices.filter { !ready.contains($0) }.flatMap { slots.cgroups[$0].processes() }
    }

    /// Processes in the slots' cgroups that no sandbox accounts for: in a slot holding a ready
    /// sandbox, any but its init and the interpreter waiting in it (the init's child); in the probe
    /// slot when no probe runs, any. Slots in use are skipped (a run's processes are its own until it
    /// ends and its sandbox is killed whole). 0 on a clean, idle daemon.
    public func strayProcesses() -> [pid_t]? {
        var stray: [pid_t] = []
        for (slot, initPID) in slots.readyInits.enumerated().prefix(poolSize) {
            guard let initPID else { continue }
            stray += slots.cgroups[slot].processes().filter { $0 != initPID && SandboxInstance.parent(of: $0) != initPID }
        }
        probeLock.withLockIfAvailable { _ in stray += slots.cgroups[poolSize].processes() }
        return stray
    }

    public var slotCgroupParents: [String] { driver.parentDirectories }

    /// Kills every sandbox and removes the slots' cgroups (daemon shutdown). Later prepares fail.
    public func shutdown() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        slots.stop()
        for layout in layouts.withLock({ Array($0.byGeneration.values) }) { layout.zygotes.stopAll() }
        for cg in slots.cgroups {
            cg.killAll(timeoutMs: 5000)
            // A task that was just killed leaves its cgroup a moment after it is gone from cgroup.procs.
            for _ in 0..<50 where !cg.remove() { usleep(10_000) }
        }
        driver.removeParent()
        rmdir(config.stateDir + "/root")
        unlink("\(config.stateDir)/\(config.cgroupName).lock")
        close(lockFD)  // another daemon (or test) may take these cgroups now
    }
}
