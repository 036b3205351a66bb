import CSandbox
import CodesandCore
import Glibc
import Logging
import Synchronization

/// A language's zygote: its pre-start launcher run once on the host (as root, like the daemon, in
/// the daemon's namespaces) with the zygote library, serving spawn requests on a socket
/// (zygote.c). A sandbox spawned through it gets a fork of the initialised interpreter as its
/// pre-started one: no interpreter start-up per run, on the CPU or on the clock.
final class Zygote: @unchecked Sendable {  // the socket is used under `alive`'s lock only
    let spec: PrestartSpec
    let pid: pid_t
    private let socket: Int32
    private let alive = Mutex(true)

    private init(spec: PrestartSpec, pid: pid_t, socket: Int32) {
        self.spec = spec
        self.pid = pid
        self.socket = socket
    }

    /// Starts `spec`'s launcher as a zygote: argv + [library, "3"], the socket on fd 3, the
    /// language's environment, default signal dispositions, /dev/null as stdin and stdout, and
    /// the daemon's stderr (the interpreter's complaints go to the daemon's log).
    static func start(_ spec: PrestartSpec, library: String, directory: String) throws -> Zygote {
        var pair: [Int32] = [0, 0]
        try sys("socketpair") { socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) }
        defer { close(pair[1]) }
        do {
            let pid = try launch(argv: spec.argv + [library, "3"], env: spec.env, socket: pair[1], directory: directory)
            return Zygote(spec: spec, pid: pid, socket: pair[0])
        } catch {
            close(pair[0])
            throw error
        }
    }

    /// Starts the zygote process with `socket` as its fd 3; returns its pid.
    static func launch(argv: [String], env: [String], socket: Int32, directory: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, socket, 3)
        // An empty root-owned directory: `-c` puts the working directory first on sys.path.
        cs_spawn_add_chdir(&actions, directory)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var all = sigset_t(), none = sigset_t()
        sigfillset(&all)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attr, &all)  // the daemon ignores SIGPIPE; an interpreter must not inherit that
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer { for p in cArgs + cEnv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attr, cArgs, cEnv)
        guard rc == 0 else { throw SystemCallError(function: "posix_spawn", context: argv[0], errno: rc) }
        return pid
    }

    var isAlive: Bool { alive.withLock { $0 } }

    /// Spawns a sandbox through the zygote; nil if it is gone or failed (then it is stopped: the
    /// caller spawns the plain way). Its first request also waits for the interpreter's start.
    func spawn(_ spec: inout cs_sandbox_spec) -> pid_t? {
        alive.withLock { alive -> pid_t? in
            guard alive else { return nil }
            let pid = cs_zygote_spawn(socket, &spec, 10_000)
            if pid > 0 { return pid }
            alive = false
            stopLocked()
            return nil
        }
    }

    /// Kills and reaps the zygote. The sandboxes it spawned are the daemon's children: they live on.
    func stop() {
        alive.withLock { alive in
            guard alive else { return }
            alive = false
            stopLocked()
        }
    }

    private func stopLocked() {
        close(socket)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}

/// The zygotes of one layout (a generation of the configuration), started on first use. A zygote
/// that fails or dies is replaced at most every few seconds; meanwhile sandboxes start their
/// interpreter the plain way (exec), so a broken zygote costs speed, never a run.
final class ZygoteSet: @unchecked Sendable {  // state under its lock
    /// The library, or nil when zygotes cannot be used with this layout (why: logged once).
    let library: String?
    private let directory: String
    private let logger: Logger
    /// By launcher and environment: a reload that changes either gets a new zygote.
    private let state = Mutex<(zygotes: [PrestartSpec: Zygote], retryAfterNs: [PrestartSpec: UInt64], stopped: Bool)>(([:], [:], false))
    static let retryDelayNs: UInt64 = 5_000_000_000

    init(config: SandboxConfig, systemRoot: String, directory: String, logger: Logger) {
        self.directory = directory
        self.logger = logger
        library = Self.usableLibrary(config: config, systemRoot: systemRoot, logger: logger)
    }

    /// The zygote for `prestart`'s language, started if need be; nil to spawn the plain way.
    func zygote(for prestart: PrestartSpec) -> Zygote? {
        guard prestart.zygote, let library else { return nil }
        return state.withLock { s -> Zygote? in
            if s.stopped { return nil }
            if let z = s.zygotes[prestart] {
                if z.isAlive { return z }
                s.zygotes[prestart] = nil
                s.retryAfterNs[prestart] = monotonicNs() + Self.retryDelayNs
                logger.warning("zygote gone; sandboxes start their interpreter the plain way for now",
                               metadata: ["language": "\(prestart.language)", "pid": "\(z.pid)"])
                return nil
            }
            if let after = s.retryAfterNs[prestart], monotonicNs() < after { return nil }
            do {
                let z = try Zygote.start(prestart, library: library, directory: directory)
                s.zygotes[prestart] = z
                logger.info("zygote started", metadata: ["language": "\(prestart.language)", "pid": "\(z.pid)"])
                return z
            } catch {
                s.retryAfterNs[prestart] = monotonicNs() + Self.retryDelayNs
                logger.warning("zygote did not start", metadata: ["language": "\(prestart.language)", "error": "\(error)"])
                return nil
            }
        }
    }

    /// The running zygotes: language and pid.
    var running: [(language: String, pid: pid_t)] {
        state.withLock { s in s.zygotes.values.filter(\.isAlive).map { ($0.spec.language, $0.pid) } }
    }

    func stopAll() {
        let all = state.withLock { s in
            defer { s.zygotes = [:]; s.stopped = true }
            return Array(s.zygotes.values)
        }
        for z in all { z.stop() }
    }

    /// The library's path if zygotes can serve sandboxes of this configuration, else nil.
    static func usableLibrary(config: SandboxConfig, systemRoot: String, logger: Logger) -> String? {
        // A zygote runs the host's interpreter: an image's sandboxes must get the image's.
        guard systemRoot.isEmpty else { return nil }
        // The zygote starts as root with the sandbox's HOME: a user site-packages there on the
        // host would be code run as root.
        if FileIO.exists(config.home) {
            logger.warning("zygotes off: the sandbox home \(config.home) exists on the host")
            return nil
        }
        let candidates: [String]
        if !config.zygoteLibrary.isEmpty {
            candidates = [config.zygoteLibrary]
        } else {
            var exe = [CChar](repeating: 0, count: 4096)
            let n = readlink("/proc/self/exe", &exe, exe.count - 1)
            let path = n > 0 ? String(decoding: exe[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
            let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
            candidates = [dir + "/libCodesandZygote.so", dir + "/../lib/codesand/libCodesandZygote.so"]
        }
        // Loaded by a root process: it must be root's alone to change.
        if let found = candidates.first(where: { path in
            var st = stat()
            return stat(path, &st) == 0 && st.st_uid == 0 && st.st_mode & 0o022 == 0
        }) { return found }
        logger.warning("zygotes off: no zygote library owned by root and writable by root only", metadata: ["looked at": "\(candidates.joined(separator: ", "))"])
        return nil
    }
}
