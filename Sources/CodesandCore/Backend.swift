import CodesandProtocol

/// A compile stage: its argv and its own limits.
public struct CompileStage: Sendable {
    public var argv: [String]
    public var limits: LimitSet
    /// The single file the compile writes in the home directory (LanguageSpec.compileOutput): a
    /// backend with a compile cache keeps it after a successful compile. "": not cached.
    public var output = ""
    /// The language and its compiler's version (the language table's), part of the cache key.
    public var language = ""
    public var version = ""
    public init(argv: [String], limits: LimitSet) {
        self.argv = argv
        self.limits = limits
    }
}

/// One run for a backend: everything already resolved (argv, env, limits).
public struct SandboxJob: Sendable {
    public var argv: [String]
    /// "NAME=value" entries: the whole environment of the program (and of its compiler).
    public var env: [String]
    /// The snippet's file name in the home directory.
    public var fileName: String
    public var code: [UInt8]
    public var stdin: [UInt8]
    public var limits: LimitSet
    /// Compiled languages: run first; the program runs only if it exits 0.
    public var compile: CompileStage?
    /// Which configuration the sandbox must be built from (0 at start; each reload adds one).
    public var generation: Int = 0
    /// For a language with a pre-started interpreter: its name and the argv handed to the waiting
    /// interpreter (the file's path, then the args). Whether the run uses it is the backend's to
    /// decide (its sandbox may hold another language's interpreter, or none).
    public var prestart: (language: String, argv: [String])? = nil

    public init(argv: [String], env: [String], fileName: String, code: [UInt8], stdin: [UInt8], limits: LimitSet,
                compile: CompileStage? = nil) {
        self.argv = argv
        self.env = env
        self.fileName = fileName
        self.code = code
        self.stdin = stdin
        self.limits = limits
        self.compile = compile
    }
}

/// An interpreter to start in a prepared sandbox before any request, waiting for its program.
public struct PrestartSpec: Sendable, Hashable {
    public var language: String
    /// `{launcher}` in an element stands for the launcher file's text (the backend reads it).
    public var argv: [String]
    /// "NAME=value" entries.
    public var env: [String]
    /// The launcher can run as a zygote (LanguageSpec.zygote).
    public var zygote: Bool
    /// The launcher's file name in the launcher directory (LanguageSpec.launcher); "": none.
    public var launcher: String
    /// The limits the language's runs get unless a request asks for others: its sandbox is made
    /// with them, so that such a run writes no cgroup file (nil: the daemon's defaults).
    public var limits: LimitSet?
    /// The launcher's text for the zygote's stdin (`{launcher_stdin}` in argv, bash's, which reads
    /// it as its start-up file): it runs only as a zygote, and without one the sandbox starts
    /// nothing in advance (Launchers.resolve).
    public var launcherOnStdin: String?
    public var onlyAsZygote: Bool { launcherOnStdin != nil }
    /// The launcher's text as a file of the sandbox's own (`{launcher_file}` in argv, node's main
    /// script): the init makes it and the interpreter finds it on fd 5 (/proc/self/fd/5).
    public var launcherFile: String?
    public init(language: String, argv: [String], env: [String], zygote: Bool = false, launcher: String = "",
                limits: LimitSet? = nil) {
        self.language = language
        self.argv = argv
        self.env = env
        self.zygote = zygote
        self.launcher = launcher
        self.limits = limits
    }

    /// The interpreter it starts, whatever the limits: what a zygote is started from and known by.
    public var interpreter: PrestartSpec {
        var spec = self
        spec.limits = nil
        return spec
    }
}

/// What the kernel said about one stage (compile or run). RunResult.build interprets it.
public struct StageOutcome: Sendable {
    /// The main process's wait status, or nil when it did not exit by itself (killed with its sandbox).
    public var waitStatus: Int32?
    public var timedOut: Bool
    public var oomKilled: Bool
    public var output: OutputCollector
    public var wallNs: UInt64
    public var cpuNs: UInt64
    public var memoryPeakBytes: Int64

    public init(waitStatus: Int32?, timedOut: Bool, oomKilled: Bool, output: OutputCollector, wallNs: UInt64,
                cpuNs: UInt64, memoryPeakBytes: Int64) {
        self.waitStatus = waitStatus
        self.timedOut = timedOut
        self.oomKilled = oomKilled
        self.output = output
        self.wallNs = wallNs
        self.cpuNs = cpuNs
        self.memoryPeakBytes = memoryPeakBytes
    }

    /// Exited by itself with code 0, within its limits.
    public var succeeded: Bool { waitStatus == 0 && !timedOut && !oomKilled && !output.truncated }
}

/// A whole run: the compile stage if any, and the run stage unless the compile failed.
public struct SandboxOutcome: Sendable {
    public var compile: StageOutcome?
    public var run: StageOutcome?
    /// The run went to an interpreter started in advance (see PrestartSpec).
    public var prestarted = false
    /// The compiled program came from the compile cache: `compile` is the stored compile's
    /// messages, the compiler did not run.
    public var compileCached = false

    public init(compile: StageOutcome?, run: StageOutcome?) {
        self.compile = compile
        self.run = run
    }

    /// A run with no compile stage.
    public init(waitStatus: Int32?, timedOut: Bool, oomKilled: Bool, output: OutputCollector, wallNs: UInt64,
                cpuNs: UInt64, memoryPeakBytes: Int64) {
        self.init(compile: nil, run: StageOutcome(waitStatus: waitStatus, timedOut: timedOut, oomKilled: oomKilled,
                                                  output: output, wallNs: wallNs, cpuNs: cpuNs, memoryPeakBytes: memoryPeakBytes))
    }
}

/// The sandbox itself failed (not the program): answered with -32603.
public struct SandboxError: Error, CustomStringConvertible, Sendable {
    public var what: String
    public var errno: Int32?
    public init(_ what: String, errno: Int32? = nil) {
        self.what = what
        self.errno = errno
    }
    public var description: String {
        guard let errno else { return what }
        return "\(what): \(String(cString: strerrorText(errno))) (errno \(errno))"
    }
}

/// The slot's sandbox could not take the job, and nothing of the job ran in it (e.g. the machine it
/// lives on went away before the code was pushed): the run may go to another slot.
public struct SandboxUnavailable: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// What a backend tells the pool between runs, for sandboxes that can vanish by themselves (on a
/// cluster member that went offline). The pool holds the backend: keep this weakly.
public protocol SlotEvents: AnyObject, Sendable {
    /// `slot`'s ready sandbox is gone: the slot is taken out and prepared again (broken, with
    /// back-off, while that fails). A slot in use or being prepared is left alone: it finds out itself.
    func sandboxLost(slot: Int, reason: String)
    /// What broke slots may be gone (a member came back): broken slots try again now.
    func retryBroken()
}

/// A sandbox implementation (native namespaces, or LXD).
public protocol SandboxBackend: Sendable {
    var name: String { get }
    /// "v1" or "v2".
    var cgroupVersion: String { get }
    /// Makes `slot` ready: a clean sandbox, fully built, waiting for a job. A sandbox left by a
    /// run is killed and thrown away first. Called off the request path, right after each run.
    /// `prestart`: an interpreter to start in it now, for a request of that language to find waiting.
    func prepare(slot: Int, prestart: PrestartSpec?) async throws
    /// Runs one job in `slot`'s ready sandbox (building one first if the slot has none), then
    /// kills it; the slot has no sandbox afterwards until the next prepare. Never two runs at once
    /// in one slot. Cancelling the task kills the run and returns what it produced so far.
    /// `onOutput`: called with the program's output as it arrives (for `stream` runs), in order,
    /// before this returns.
    func run(_ job: SandboxJob, slot: Int, onOutput: (@Sendable (OutputChunk) -> Void)?) async throws -> SandboxOutcome
    /// `run`, telling `turn` when the run has used no CPU for a while and when it uses CPU again
    /// (a backend that cannot tell never does: the default).
    func run(_ job: SandboxJob, slot: Int, turn: RunTurn?, onOutput: (@Sendable (OutputChunk) -> Void)?) async throws -> SandboxOutcome
    /// Languages whose zygote is running now (see LanguageSpec.zygote).
    var zygoteLanguages: [String] { get }
    /// Processes in the slots' cgroups that no sandbox accounts for (what runs left behind), or nil
    /// when the backend cannot tell. Slots in use are not looked at: read it when the pool is idle.
    func strayProcesses() -> [Int32]?
    /// The directories holding the slots' cgroups, for tools that check nothing piles up there.
    var slotCgroupParents: [String] { get }
    /// A reload: sandboxes prepared from now on are built from `config` (another image, other
    /// mounts, caps or container source). Returns its generation, for jobs (SandboxJob.generation):
    /// a run never mixes two configurations. Throws, changing nothing, when `config` cannot work.
    func addGeneration(_ config: CodesandConfig) async throws -> Int
    /// After a reload: true while `slot`'s sandbox is still of the configuration before it (LXD: its
    /// container is replaced at a later prepare), false once it is of the newest; nil when the backend
    /// does not tell (each slot is then prepared again once). See SlotPool.recycleAll.
    func isOutdated(slot: Int) -> Bool?
    /// True when `program` (an absolute path) is an executable in the sandboxes' system, not the host's.
    func isExecutable(_ program: String) async -> Bool
    /// Runs `argv` where the sandboxes' programs live and returns its stdout and stderr together, or
    /// nil when it failed: to ask the sandboxes' interpreters and compilers for their versions.
    func probe(_ argv: [String], env: [String]) async -> String?
    /// Kills every sandbox and gives back what the backend holds (daemon shutdown). Later prepares fail.
    func shutdown() async
    /// Where each slot's sandbox lives, when the backend spreads them over machines (an LXD
    /// cluster's members): per slot its member, nil while not placed yet. nil: one machine.
    func slotMembers() -> [String?]?
    /// The pool, handed over once at its start: see SlotEvents.
    func observe(_ events: any SlotEvents)
    /// True when `run` never blocks the thread that calls it (everything that waits runs on the
    /// backend's own threads): the server may then run requests on its event loop. False (the
    /// default): requests run on Swift's pool.
    var neverBlocksItsCaller: Bool { get }
}

extension SandboxBackend {
    public func slotMembers() -> [String?]? { nil }
    public func observe(_ events: any SlotEvents) {}
    public var zygoteLanguages: [String] { [] }
    public func isOutdated(slot: Int) -> Bool? { nil }
    public func strayProcesses() -> [Int32]? { nil }
    public var slotCgroupParents: [String] { [] }
    public var neverBlocksItsCaller: Bool { false }
    public func run(_ job: SandboxJob, slot: Int, turn: RunTurn?,
                    onOutput: (@Sendable (OutputChunk) -> Void)?) async throws -> SandboxOutcome {
        try await run(job, slot: slot, onOutput: onOutput)
    }
}

#if canImport(Glibc)
import Glibc
func strerrorText(_ e: Int32) -> UnsafeMutablePointer<CChar> { strerror(e) }
#else
import Darwin
func strerrorText(_ e: Int32) -> UnsafeMutablePointer<CChar> { strerror(e) }
#endif
