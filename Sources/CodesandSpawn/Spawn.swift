import CSandbox
import Glibc

/// Starts a program with posix_spawn, the one way codesand starts host programs (zygotes, version
/// probes, debootstrap, the bare baselines of `bench`, the tests' daemons): argv and environment
/// exactly as given, no shell, no PATH search unless asked; the child's fds are set up explicitly
/// and every other fd of ours is closed (a listening socket or a sandbox's pipe must never leak
/// into it); signals start at their defaults with none blocked (the daemon ignores SIGPIPE, and a
/// child must not inherit that).
public struct Spawn: Sendable {
    public enum Stdio: Sendable, Equatable {
        /// The caller's own fd of that number.
        case inherit
        /// /dev/null.
        case null
        /// Our fd, dup2'd into place.
        case fd(Int32)
        /// A file opened for writing (created 0644; truncated unless `append`).
        case file(String, append: Bool)
        /// stderr only: wherever stdout goes.
        case sameAsStdout
    }

    public var argv: [String]
    /// "NAME=value" entries: the child's whole environment.
    public var environment: [String]
    public var stdin: Stdio = .null
    public var stdout: Stdio = .inherit
    public var stderr: Stdio = .inherit
    /// Our fds the child gets as 3, 4, … in this order.
    public var passing: [Int32] = []
    /// The child's working directory; nil: ours.
    public var directory: String? = nil
    /// The child leads a new process group (so it can be signalled with all it starts).
    public var newProcessGroup = false
    /// argv[0] without a "/" is looked up in PATH.
    public var searchPath = false

    public init(_ argv: [String], environment: [String] = Spawn.currentEnvironment) {
        self.argv = argv
        self.environment = environment
    }

    /// This process's environment, as "NAME=value" entries.
    public static var currentEnvironment: [String] {
        var out: [String] = []
        var p = environ
        while let entry = p.pointee {
            out.append(String(cString: entry))
            p += 1
        }
        return out
    }

    /// Starts the program and returns its pid. `via` runs the posix_spawn call itself, e.g. on a
    /// particular thread (the zygotes are the children of the daemon's long-lived parent thread).
    public func start(via run: (@Sendable (@escaping @Sendable () -> (pid_t, Int32)) -> (pid_t, Int32))? = nil) throws(SpawnError) -> pid_t {
        guard let program = argv.first, !program.isEmpty else { throw SpawnError(program: "", errno: EINVAL) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, how) in [(Int32(0), stdin), (1, stdout), (2, stderr)] {
            switch how {
            case .inherit: break
            case .null: posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            case .fd(let fd): posix_spawn_file_actions_adddup2(&actions, fd, target)
            case .file(let path, let append):
                posix_spawn_file_actions_addopen(&actions, target, path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0o644)
            case .sameAsStdout: posix_spawn_file_actions_adddup2(&actions, 1, target)
            }
        }
        for (i, fd) in passing.enumerated() { posix_spawn_file_actions_adddup2(&actions, fd, Int32(3 + i)) }
        cs_spawn_add_closefrom(&actions, Int32(3 + passing.count))
        if let directory { cs_spawn_add_chdir(&actions, directory) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t(), none = sigset_t()
        sigfillset(&all)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        var flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK
        if newProcessGroup {
            flags |= POSIX_SPAWN_SETPGROUP
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer { for p in cArgs + cEnv { free(p) } }
        let lookUp = searchPath && !program.contains("/")
        let (pid, rc) = withUnsafePointer(to: &actions) { a in
            withUnsafePointer(to: &attributes) { t in
                // The pointers stay valid until `run` returns: it runs the call before returning.
                let call = PointerBox((a, t, cArgs, cEnv))
                let spawn: @Sendable () -> (pid_t, Int32) = {
                    let (a, t, args, env) = call.value
                    var pid: pid_t = 0
                    let rc = lookUp ? posix_spawnp(&pid, args[0]!, a, t, args, env) : posix_spawn(&pid, args[0]!, a, t, args, env)
                    return (pid, rc)
                }
                return run?(spawn) ?? spawn()
            }
        }
        guard rc == 0 else { throw SpawnError(program: program, errno: rc) }
        return pid
    }

    /// Waits for `pid` to end and returns its wait status (retrying after signals).
    public static func waitStatus(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }
}

/// posix_spawn failed: the program is missing, not executable, or the system is out of processes.
public struct SpawnError: Error, CustomStringConvertible, Sendable {
    public var program: String
    public var errno: Int32
    public var description: String { "cannot start \(program): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// Carries pointers into a closure run synchronously on another thread.
private struct PointerBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
