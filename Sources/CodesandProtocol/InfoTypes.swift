/// The method names of the protocol.
public enum RPCMethod {
    public static let run = "run"
    public static let languages = "languages"
    public static let status = "status"
    /// Prometheus text exposition of the daemon's counters (a string result).
    public static let metrics = "metrics"
    /// Re-read the config (and image) and move the pool over to it, slot by slot.
    public static let poolReload = "pool.reload"
    /// Notification from the daemon: output of a run that asked for `stream`.
    public static let runOutput = "run.output"
}

/// One entry of the `languages` result.
public struct LanguageInfo: Codable, Hashable, Sendable {
    public var name: String
    public var aliases: [String]
    public var version: String
    public init(name: String, aliases: [String], version: String) {
        self.name = name
        self.aliases = aliases
        self.version = version
    }
}

/// Result of the `status` method.
public struct StatusResult: Codable, Hashable, Sendable {
    public var version: String
    public var backend: String
    /// "v1" or "v2".
    public var cgroup: String
    public var runsTotal: Int64
    public var uptimeS: Int64
    /// Runs by final status (`ok`, `error`, `timeout`, …).
    public var runsByStatus: [String: Int64]
    /// Runs executing now, and requests waiting for a sandbox.
    public var running: Int
    public var queued: Int
    /// Slots (sandboxes kept prepared), and how many run at once (absent from older daemons: all).
    public var poolSize: Int
    public var maxRunning: Int?
    /// Slots per state: preparing, ready, busy, resetting, broken.
    public var slots: [String: Int]
    /// Recent durations of a slot's reset (kill, teardown, prepare again), in ms.
    public var resetMsP50: Double
    public var resetMsP99: Double
    /// Failed prepares since start (each retried with backoff).
    public var slotFailures: Int64
    /// Languages whose zygote is running (their pre-started interpreters are its forks); absent
    /// from daemons before zygotes.
    public var zygotes: [String]?
    /// The daemon's process id (for /proc/PID: memory, fds, children). Absent from older daemons.
    public var pid: Int32?
    /// Set when no sandbox can be prepared (every slot broken): the cause. Runs then fail at once
    /// with -32603 carrying it.
    public var poolError: String?
    /// The broken slots: why each last prepare failed, and when it tries again.
    public var brokenSlots: [BrokenSlotInfo]?
    /// Processes in ready slots' cgroups beyond their sandbox's own (what runs left behind); slots in
    /// use are not counted, so 0 is expected when the pool is idle.
    public var strayProcesses: Int?
    /// The directories that hold the slots' cgroups.
    public var sandboxCgroups: [String]?
    /// Slots per cluster member and state (`{"m1": {"ready": 2, "busy": 0, …}, …}`), when the
    /// backend spreads the pool over a cluster's members; absent otherwise.
    public var members: [String: [String: Int]]?

    public init(version: String, backend: String, cgroup: String, runsTotal: Int64, uptimeS: Int64,
                runsByStatus: [String: Int64], running: Int, queued: Int, poolSize: Int,
                slots: [String: Int], resetMsP50: Double, resetMsP99: Double, slotFailures: Int64, zygotes: [String]? = nil) {
        self.zygotes = zygotes
        self.slots = slots
        self.resetMsP50 = resetMsP50
        self.resetMsP99 = resetMsP99
        self.slotFailures = slotFailures
        self.version = version
        self.backend = backend
        self.cgroup = cgroup
        self.runsTotal = runsTotal
        self.uptimeS = uptimeS
        self.runsByStatus = runsByStatus
        self.running = running
        self.queued = queued
        self.poolSize = poolSize
    }

    enum CodingKeys: String, CodingKey {
        case version, backend, cgroup, running, queued
        case runsTotal = "runs_total", uptimeS = "uptime_s", runsByStatus = "runs_by_status", poolSize = "pool_size"
        case maxRunning = "max_running"
        case slots, resetMsP50 = "reset_ms_p50", resetMsP99 = "reset_ms_p99", slotFailures = "slot_failures", zygotes
        case pid, poolError = "pool_error", brokenSlots = "broken_slots", strayProcesses = "stray_processes"
        case sandboxCgroups = "sandbox_cgroups", members
    }
}

/// One entry of `status`'s `broken_slots`.
public struct BrokenSlotInfo: Codable, Hashable, Sendable {
    public var slot: Int
    /// Why its last prepare failed.
    public var error: String
    /// Failed prepares in a row.
    public var failures: Int
    /// Until its next attempt (its back-off), in ms.
    public var retryInMs: Int64

    public init(slot: Int, error: String, failures: Int, retryInMs: Int64) {
        self.slot = slot
        self.error = error
        self.failures = failures
        self.retryInMs = retryInMs
    }

    enum CodingKeys: String, CodingKey {
        case slot, error, failures, retryInMs = "retry_in_ms"
    }
}

/// Params of the `run.output` notification: a piece of a `stream` run's output, for request `id`.
public struct RunOutputParams: Codable, Hashable, Sendable {
    public var id: RPCID
    public var stream: OutputStream
    public var text: String

    public init(id: RPCID, chunk: OutputChunk) {
        self.id = id
        self.stream = chunk.stream
        self.text = chunk.text
    }
}

/// Result of `pool.reload`: what the pool moves over to.
public struct ReloadResult: Codable, Hashable, Sendable {
    /// The sandboxes' system now: "host", or "image" (sandbox.rootfs).
    public var rootfs: String
    /// The languages found installed there, with their versions.
    public var languages: [Language]
    /// Config keys that changed but take effect only after a restart (e.g. socket.path, pool.size).
    public var needsRestart: [String]

    public struct Language: Codable, Hashable, Sendable {
        public var name: String
        public var version: String
        public init(name: String, version: String) {
            self.name = name
            self.version = version
        }
    }

    public init(rootfs: String, languages: [Language], needsRestart: [String]) {
        self.rootfs = rootfs
        self.languages = languages
        self.needsRestart = needsRestart
    }

    enum CodingKeys: String, CodingKey {
        case rootfs, languages, needsRestart = "needs_restart"
    }
}
