import CSandbox
import CodesandSpawn
import CodesandCore
import Glibc
import Synchronization

/// A language's zygote: its pre-start launcher run once on the host (as root, like the daemon, in
/// the daemon's namespaces) with the zygote library, serving spawn requests on a socket
/// (zygote.c). A sandbox spawned through it gets a fork of the initialised interpreter as its
/// pre-started one: no interpreter start-up per run, on the CPU or on the clock.
final class Zygote: @unchecked Sendable {  // the fds are used under `alive`'s lock only
    let spec: PrestartSpec
    let pid: pid_t
    private let socket: Int32
    /// The read end of the zygote's stderr: what it says before it fails goes to the daemon's log.
    private let stderr: Int32
    private let alive = Mutex(true)
    /// `alive`, readable without its lock: that lock is held across a spawn (up to 10 s when the
    /// zygote hangs), and `status` or another slot's prepare must not wait for it.
    private let aliveNow = Atomic<Bool>(true)
    /// Refusals in a row: a zygote that refuses every request is stopped (and replaced later).
    private var refusals = 0
    static let maxRefusals = 5

    /// What became of a spawn request.
    enum Spawned {
        case sandbox(pid_t)
        /// Nothing was spawned: the caller may spawn the plain way with the same fds.
        case nothing(String)
        /// No answer: an init may hold the fds. The zygote is stopped; the caller must discard them.
        case unknown(String)
    }

    private init(spec: PrestartSpec, pid: pid_t, socket: Int32, stderr: Int32) {
        self.spec = spec
        self.pid = pid
        self.socket = socket
        self.stderr = stderr
    }

    /// Starts `spec`'s launcher as a zygote: argv + `arguments` (a language's: the zygote library)
    /// + ["3"], the socket on fd 3, and waits until it announces that it serves (an interpreter
    /// that fails to start is an error here, not a lost spawn request later).
    static func start(_ spec: PrestartSpec, arguments: [String]) throws -> Zygote {
        var pair: [Int32] = [0, 0], err: [Int32] = [0, 0]
        try sys("socketpair") { socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) }
        guard cs_pipe_cloexec(&err) == 0 else {
            close(pair[0]); close(pair[1])
            throw SystemCallError(function: "pipe2", context: "", errno: errno)
        }
        do {
            let pid: pid_t
            do {
                // Only the zygote may hold its ends: its death must be an EOF here at once.
                defer { close(pair[1]); close(err[1]) }
                pid = try launch(argv: spec.argv + arguments + ["3"], env: spec.env, socket: pair[1], stderr: err[1],
                                 stdinText: spec.launcherOnStdin ?? "")
            }
            _ = fcntl(err[0], F_SETFL, O_NONBLOCK)
            let zygote = Zygote(spec: spec, pid: pid, socket: pair[0], stderr: err[0])
            if cs_zygote_await_ready(pair[0], 10_000) != 0 {
                let why = "\(String(cString: strerror(errno)))" + zygote.lastWords()
                zygote.stop()
                throw SandboxError("the zygote did not get ready: \(why)")
            }
            return zygote
        } catch let error as SandboxError {
            throw error
        } catch {
            close(pair[0])
            close(err[0])
            throw error
        }
    }

    /// Starts the zygote process: `socket` as fd 3, `stderr` as fd 2, pipes that nobody writes or
    /// reads as 0 (holding `stdinText`, then at its end) and 1 (the interpreter's stdio objects are
    /// made for the pipes its forks get),
    /// nothing else of the daemon's fds, default signal dispositions, `/` as working directory
    /// (`-c` puts it first on sys.path: it must be root's). Returns its pid.
    static func launch(argv: [String], env: [String], socket: Int32, stderr: Int32, stdinText: String = "") throws -> pid_t {
        var stdin: [Int32] = [0, 0], stdout: [Int32] = [0, 0]
        try sys("pipe2") { cs_pipe_cloexec(&stdin) }
        defer { close(stdin[0]) }
        // Never blocks: a launcher that does not fit the pipe is an error (pipes can be smaller
        // than the default 64 KiB under a user's pipe quota), not a zygote start that hangs.
        _ = fcntl(stdin[1], F_SETFL, O_NONBLOCK)
        let written = Array(stdinText.utf8).withUnsafeBytes { write(stdin[1], $0.baseAddress, $0.count) }
        close(stdin[1])  // then at EOF
        guard written == stdinText.utf8.count else { throw SystemCallError(function: "write", context: "the launcher", errno: errno) }
        guard cs_pipe_cloexec(&stdout) == 0 else { throw SystemCallError(function: "pipe2", context: "", errno: errno) }
        defer { close(stdout[1]) }
        close(stdout[0])
        var spawn = Spawn(argv, environment: env)
        spawn.stdin = .fd(stdin[0])
        spawn.stdout = .fd(stdout[1])
        spawn.stderr = .fd(stderr)
        spawn.passing = [socket]
        spawn.directory = "/"
        do throws(SpawnError) {
            // From the parent thread: the inits the zygote clones (CLONE_PARENT) are that thread's children.
            return try spawn.start(via: { ParentThread.shared.run($0) })
        } catch {
            throw SystemCallError(function: "posix_spawn", context: argv[0], errno: error.errno)
        }
    }

    var isAlive: Bool { aliveNow.load(ordering: .acquiring) }

    /// Asks the zygote to spawn `spec`. Its first request also waits for the interpreter's start.
    /// `forkInterpreter`: the sandbox's pre-started interpreter is a fork of this zygote's; else
    /// its init execs the spec's prestart argv (if any), as one the daemon cloned would.
    func spawn(_ spec: inout cs_sandbox_spec, forkInterpreter: Bool) -> Spawned {
        alive.withLock { alive -> Spawned in
            guard alive else { return .nothing("the zygote was stopped") }
            var failure: Int32 = 0
            let pid = cs_zygote_spawn(socket, &spec, forkInterpreter ? 1 : 0, 10_000, &failure)
            if pid > 0 {
                refusals = 0
                return .sandbox(pid)
            }
            let why = "\(String(cString: strerror(errno))) (errno \(errno))"
            switch failure {
            case Int32(CS_ZYGOTE_LOCAL.rawValue):
                return .nothing("no request for the zygote: \(why)")
            case Int32(CS_ZYGOTE_REFUSED.rawValue):
                refusals += 1
                guard refusals >= Self.maxRefusals else { return .nothing("the zygote could not spawn: \(why)") }
            default:
                break
            }
            let last = lastWords()
            alive = false
            aliveNow.store(false, ordering: .releasing)
            stopLocked()
            switch failure {
            case Int32(CS_ZYGOTE_REFUSED.rawValue): return .nothing("the zygote refused \(refusals) spawns in a row: \(why)\(last)")
            case Int32(CS_ZYGOTE_NOT_SENT.rawValue): return .nothing("the zygote is gone: \(why)\(last)")
            default: return .unknown("the zygote did not answer: \(why)\(last)")
            }
        }
    }

    /// Kills and reaps the zygote. The sandboxes it spawned are the daemon's children: they live on.
    func stop() {
        alive.withLock { alive in
            guard alive else { return }
            alive = false
            aliveNow.store(false, ordering: .releasing)
            stopLocked()
        }
    }

    private func stopLocked() {
        close(socket)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        close(stderr)
    }

    /// The end of what the zygote wrote on its stderr, if anything (it has no reason to, but to fail).
    fileprivate func lastWords() -> String {
        var buf = [UInt8](repeating: 0, count: 2048)
        let n = buf.withUnsafeMutableBytes { read(stderr, $0.baseAddress, $0.count) }
        guard n > 0 else { return "" }
        let text = String(decoding: buf[0..<n], as: UTF8.self).split(separator: "\n").suffix(3).joined(separator: " | ")
        return "; it said: \(text)"
    }
}
