import CodesandProtocol

/// A language of the table: how to place and run a snippet.
public struct LanguageSpec: Hashable, Sendable {
    public var name: String
    public var aliases: [String]
    /// The snippet's file name inside the home directory (no slash).
    public var file: String
    /// argv with placeholders `{file}` (the file's path) and `{args}` (the request's args, spliced).
    public var run: [String]
    public var env: [String: String]
    /// argv run once on the host at start; its first version-looking word is reported.
    public var version: [String]
    /// argv of a compile stage (empty: none); placeholders as in `run`, plus `{flags}`.
    public var compile: [String] = []
    /// The single file `compile` writes in the home directory (a plain name), which the daemon may
    /// keep in its compile cache; "": the compile's product is not cached.
    public var compileOutput = ""
    /// Code without `templateUnless` in it is wrapped: `{code}` in `templateWrap` is replaced by it.
    public var templateUnless: String? = nil
    public var templateWrap: String? = nil
    /// Regex a request's compile_flags must match whole, each; nil: compile_flags are refused.
    public var flagsPattern: String? = nil
    /// This language's default limits, where they differ from limits.default.
    public var limits: RunLimits? = nil
    /// The compile stage's limits, where they differ from limits.default.
    public var compileLimits: RunLimits? = nil
    /// argv of a launcher that starts the interpreter ahead of a request and then reads the
    /// program's argv ("path\0arg…") from fd 3 (empty: this language runs the plain way only).
    /// `{launcher}` in an element stands for the text of the `launcher` file.
    public var prestart: [String] = []
    /// The launcher's file name in the launcher directory (`sandbox.launcher_dir`), e.g.
    /// "python3.py"; "": `prestart` needs none.
    public var launcher = ""
    /// The `prestart` launcher can also run as a zygote (zygote.c): started once on the host with
    /// the zygote library's path and a socket fd as its two arguments, it forks each sandbox's
    /// interpreter instead of starting one per sandbox.
    public var zygote = false
}

public struct SandboxConfig: Hashable, Sendable {
    public var stateDir: String
    public var cgroupName: String
    /// "host": the host's system directories, read-only; "image": those of the directory `image`.
    public var rootfs: String
    public var image: String
    public var uidBase: UInt32
    public var hostname: String
    public var home: String
    public var tmpfsBytes: Int64
    public var tmpfsInodes: Int64
    public var readonlyPaths: [String]
    public var rootLinks: [String: String]
    public var maskedPaths: [String]
    public var fileSizeBytes: Int64
    public var openFiles: Int64
    /// cgroup v1 only: the slot's `memory.kmem.tcp.limit_in_bytes` (TCP and UDP socket buffers),
    /// which v1 does not count in the memory limit. v2 charges socket buffers to `memory.max`.
    public var socketMemoryBytes: Int64 = 16 << 20
    public var env: [String: String]
    /// The zygotes' shared library (libCodesandZygote.so); "": next to the daemon's executable, or
    /// in ../lib/codesand from it.
    public var zygoteLibrary = ""
    /// The languages' pre-start launchers (LanguageSpec.launcher); "": `launchers` next to the
    /// daemon's executable, ../lib/codesand/launchers from it, or a SwiftPM build's copy.
    public var launcherDir = ""
    /// The native backend's cache of compiled programs (state_dir/compile-cache): at most this
    /// many entries and bytes; 0 in either disables it.
    public var compileCacheEntries = 512
    public var compileCacheBytes: Int64 = 256 << 20
    /// Native backend: a slot's network namespace serves its next sandbox while its runs make no
    /// socket but unix ones (README, "Sandboxes"). Off: a new one for every sandbox.
    public var keepNetworkNamespace = true
    /// "native" or "lxd" (sandbox.backend), and the `[lxd]` section (LXDConfig.swift).
    public var backend = "native"
    public var lxd = LXDConfig()
}

/// The whole configuration (see DefaultConfig for every key, its unit and default).
public struct CodesandConfig: Sendable {
    public var socketPath: String
    public var socketGroup: String
    public var socketMode: UInt32
    public var maxMessageBytes: Int
    /// Client connections served at once (rpc.max_connections), and from one uid (…_per_uid).
    public var maxConnections: Int
    public var maxConnectionsPerUID: Int
    public var defaultLimits: LimitSet
    public var maxLimits: LimitSet
    /// Slots, the sandboxes the backend keeps prepared (pool.size + pool.spare), and how many of
    /// them run at once (pool.size).
    public var poolSize: Int
    public var maxRunning: Int
    public var queueMax: Int
    public var queueMaxWaitMs: Int64
    public var sandbox: SandboxConfig
    public var logLevel: String
    public var logCode: Bool
    public var languages: [LanguageSpec]

    /// The built-in defaults alone.
    public static func defaults() throws -> CodesandConfig {
        try ConfigLoader.load(fileText: nil)
    }
}
