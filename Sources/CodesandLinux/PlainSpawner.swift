import CodesandCore
import Glibc
import Logging
import Synchronization

/// codesand-spawner run as the zygote of plain sandboxes (those with no pre-started interpreter:
/// bash, sh, perl, the compiled languages...). The init of such a sandbox is a clone of whatever
/// process asks the kernel for it; cloned by the daemon, it copies the page tables of a 30 MB
/// multithreaded process (about 1.5 ms of CPU per sandbox, measured), cloned by this small C
/// program, almost nothing. Started on first use; one that fails or dies is started again at most
/// every few seconds, and meanwhile plain inits come from a language's zygote or the daemon.
final class PlainSpawner: Sendable {
    /// Its executable (root's alone to change: it runs as root), or nil when it is not installed.
    let executable: String?
    private let logger: Logger
    private let state = Mutex<(zygote: Zygote?, retryAfterNs: UInt64, failures: Int, stopped: Bool)>((nil, 0, 0, false))

    /// The executable's file when this daemon first found it (device, inode, size, change time):
    /// a layout built by a reload after an upgrade must not pair this daemon with another build's
    /// spawner.
    private let identity: [Int]?
    private static let firstSeen = Mutex<[String: [Int]]>([:])

    init(config: SandboxConfig, logger: Logger) {
        self.logger = logger
        executable = Self.find(config: config)
        identity = executable.flatMap { path in
            Self.firstSeen.withLock { seen in
                if seen[path] == nil { seen[path] = Self.identity(of: path) }
                return seen[path]
            }
        }
    }

    static func identity(of path: String) -> [Int]? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return [Int(st.st_dev), Int(st.st_ino), Int(st.st_size), Int(st.st_ctim.tv_sec), Int(st.st_ctim.tv_nsec)]
    }

    /// The running spawner, started if need be; nil to clone plain inits another way.
    func running() -> Zygote? {
        guard let executable else { return nil }
        return state.withLock { s -> Zygote? in
            if let z = s.zygote, z.isAlive { return z }
            if s.stopped { return nil }
            func failed() -> UInt64 {
                s.failures += 1
                let delay = ZygoteSet.retryDelayNs << UInt64(min(s.failures - 1, 6))
                s.retryAfterNs = monotonicNs() + delay
                return delay / 1_000_000
            }
            if let gone = s.zygote {  // a death counts as a failure: one that dies at each request is not restarted at once
                s.zygote = nil
                logger.warning("plain spawner gone; plain sandboxes are cloned another way for now",
                               metadata: ["pid": "\(gone.pid)", "retry_ms": "\(failed())"])
            }
            if monotonicNs() < s.retryAfterNs { return nil }
            do {
                guard ZygoteSet.loadableAsRoot(executable) else {
                    throw SandboxError("\(executable), its directory or one above is not root's alone to change")
                }
                // The inits it clones run its copy of the sandbox code: it must be the build this
                // daemon found at its start (an upgrade installed meanwhile waits for a restart).
                guard Self.identity(of: executable) == identity else {
                    throw SandboxError("\(executable) changed since codesandd started; restart codesandd to use it")
                }
                let spec = PrestartSpec(language: "plain", argv: [executable], env: [], zygote: true)
                let z = try Zygote.start(spec, arguments: [])
                (s.zygote, s.failures) = (z, 0)
                logger.info("plain spawner ready", metadata: ["pid": "\(z.pid)"])
                return z
            } catch {
                logger.warning("plain spawner not started", metadata: ["error": "\(error)", "retry_ms": "\(failed())"])
                return nil
            }
        }
    }

    /// Its pid while it runs.
    var pid: pid_t? { state.withLock { s in s.zygote.flatMap { $0.isAlive ? $0.pid : nil } } }

    func stop() {
        let z = state.withLock { s in
            defer { (s.zygote, s.stopped) = (nil, true) }
            return s.zygote
        }
        z?.stop()
    }

    /// codesand-spawner next to the daemon's executable, in ../lib/codesand, or next to the
    /// configured zygote library.
    static func find(config: SandboxConfig) -> String? {
        let (dir, above) = FileIO.executableDirectories()
        var candidates = [dir + "/codesand-spawner", above + "/lib/codesand/codesand-spawner"]
        if !config.zygoteLibrary.isEmpty, let slash = config.zygoteLibrary.lastIndex(of: "/") {
            candidates.append(String(config.zygoteLibrary[..<slash]) + "/codesand-spawner")
        }
        guard let found = candidates.first(where: { access($0, X_OK) == 0 }), let real = realpath(found, nil) else { return nil }
        defer { free(real) }
        return String(cString: real)
    }
}
