import CodesandCore
import Glibc
import Logging
import Synchronization

/// The zygotes of one layout (a generation of the configuration), started on first use. A zygote
/// that fails or dies is replaced at most every few seconds; meanwhile sandboxes start their
/// interpreter the plain way (exec), so a broken zygote costs speed, never a run.
final class ZygoteSet: @unchecked Sendable {  // state under its lock
    /// The library, or nil when zygotes cannot be used with this layout (why: logged once).
    let library: String?
    private let home: String
    private let logger: Logger
    /// By launcher and environment: a reload that changes either gets a new zygote. `failures`:
    /// starts that failed and zygotes found gone, in a row; the next start waits retryDelayNs
    /// doubled for each (up to 64 times).
    private let state = Mutex<(zygotes: [PrestartSpec: Zygote], retryAfterNs: [PrestartSpec: UInt64],
                               failures: [PrestartSpec: Int], stopped: Bool)>(([:], [:], [:], false))
    static let retryDelayNs: UInt64 = 5_000_000_000

    /// codesand-spawner, the zygote of plain sandboxes.
    private let spawner: PlainSpawner

    init(config: SandboxConfig, systemRoot: String, logger: Logger) {
        self.logger = logger
        home = config.home
        spawner = PlainSpawner(config: config, logger: logger)
        // A zygote runs the host's interpreter: an image's sandboxes must get the image's.
        library = systemRoot.isEmpty ? Self.findLibrary(config: config, logger: logger) : nil
    }

    /// The zygote for `prestart`'s language, started if need be; nil to spawn the plain way.
    func zygote(for spec: PrestartSpec) -> Zygote? {
        let prestart = spec.interpreter  // one zygote per interpreter, whatever its sandboxes' limits
        guard prestart.zygote, let library else { return nil }
        return state.withLock { s -> Zygote? in
            if s.stopped { return nil }
            func failed() -> UInt64 {
                let n = (s.failures[prestart] ?? 0) + 1
                s.failures[prestart] = n
                let delay = Self.retryDelayNs << UInt64(min(n - 1, 6))
                s.retryAfterNs[prestart] = monotonicNs() + delay
                return delay / 1_000_000
            }
            if let z = s.zygotes[prestart] {
                if z.isAlive { return z }
                s.zygotes[prestart] = nil
                let ms = failed()
                logger.warning("zygote gone; sandboxes start their interpreter the plain way for now",
                               metadata: ["language": "\(prestart.language)", "pid": "\(z.pid)", "retry_ms": "\(ms)"])
                return nil
            }
            if let after = s.retryAfterNs[prestart], monotonicNs() < after { return nil }
            do {
                // Checked at every start: a zygote is root running the host's interpreter.
                try Self.checkTrusted(library: library, home: Self.home(of: prestart) ?? home)
                let z = try Zygote.start(prestart, arguments: [library])
                // A zygote of this language with another launcher or environment (a reload
                // changed them) serves no one any more.
                for (old, other) in s.zygotes where old.language == prestart.language {
                    other.stop()
                    s.zygotes[old] = nil
                }
                s.zygotes[prestart] = z
                s.failures[prestart] = nil
                logger.info("zygote ready", metadata: ["language": "\(prestart.language)", "pid": "\(z.pid)"])
                return z
            } catch {
                let ms = failed()
                logger.warning("zygote not started", metadata: ["language": "\(prestart.language)", "error": "\(error)",
                                                                "retry_ms": "\(ms)"])
                return nil
            }
        }
    }

    /// What clones a plain sandbox's init: the plain spawner (started on first use), else a
    /// language's zygote that runs now; nil: the daemon clones it.
    var plainSpawner: Zygote? {
        if let spawner = spawner.running() { return spawner }
        return state.withLock { s in s.stopped ? nil : s.zygotes.values.first(where: \.isAlive) }
    }

    /// The plain spawner's pid while it runs.
    var plainSpawnerPID: pid_t? { spawner.pid }

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
        spawner.stop()
    }

    static func home(of prestart: PrestartSpec) -> String? {
        prestart.env.last { $0.hasPrefix("HOME=") }.map { String($0.dropFirst(5)) }
    }

    /// Throws unless only root can change the library, and nobody but root can make `home` exist
    /// (the interpreter starts as root with that HOME: a user site-packages there would be code
    /// run as root).
    static func checkTrusted(library: String, home: String) throws {
        guard loadableAsRoot(library) else {
            throw SandboxError("the zygote library \(library), or a directory above it, is not root's alone to change; "
                               + "chown root and chmod go-w it and them, or set sandbox.zygote_library to a copy that is")
        }
        guard home.hasPrefix("/"), !FileIO.exists(home) else {
            throw SandboxError("the sandbox home \(home) exists on the host (its user site-packages would run as root); "
                               + "remove it, or set sandbox.home to a path that does not exist on the host")
        }
        guard onlyRootCanChange(home) else {
            throw SandboxError("someone but root could create the sandbox home \(home) on the host; "
                               + "make its parent directories root's and not writable by others, or change sandbox.home")
        }
    }

    /// True when `path` (a program or library root runs) is root's alone to change, and so is the
    /// directory it is in: the loader looks there first for the libraries it needs ($ORIGIN in
    /// its RUNPATH), so others must not be able to add files next to it, sticky directory or not.
    static func loadableAsRoot(_ path: String) -> Bool {
        guard onlyRootCanChange(path), let slash = path.lastIndex(of: "/") else { return false }
        var st = stat()
        let dir = slash == path.startIndex ? "/" : String(path[..<slash])
        return lstat(dir, &st) == 0 && st.st_mode & 0o022 == 0
    }

    /// True when nobody but root can change `path` (absolute, no symlinks) or make it exist: it and
    /// every directory above it are root's and writable by root only, except that a directory
    /// others may write to is fine if sticky (as /tmp) and what is below it exists and is root's:
    /// the sticky bit keeps others from renaming or removing it. A name that does not exist yet
    /// must be in a directory only root can write to.
    static func onlyRootCanChange(_ path: String) -> Bool {
        var prefix = ""
        var openToOthers = false  // the directory above lets others create names in it
        for part in [""] + path.split(separator: "/").map(String.init) {
            prefix += part.isEmpty ? "/" : (prefix == "/" ? "" : "/") + part
            var st = stat()
            guard lstat(prefix, &st) == 0 else { return errno == ENOENT && !openToOthers }
            let kind = st.st_mode & S_IFMT
            guard kind != S_IFLNK, st.st_uid == 0 else { return false }
            openToOthers = st.st_mode & 0o022 != 0
            if openToOthers && (kind != S_IFDIR || st.st_mode & S_ISVTX == 0) { return false }
        }
        return true
    }

    /// The configured library, or libCodesandZygote.so next to the executable or in ../lib/codesand.
    static func findLibrary(config: SandboxConfig, logger: Logger) -> String? {
        let candidates: [String]
        if !config.zygoteLibrary.isEmpty {
            candidates = [config.zygoteLibrary]
        } else {
            let (dir, above) = FileIO.executableDirectories()
            candidates = [dir + "/libCodesandZygote.so", above + "/lib/codesand/libCodesandZygote.so"]
        }
        // Its real path: what is checked at each start is what the interpreter opens.
        if let found = candidates.first(where: { access($0, R_OK) == 0 }), let real = realpath(found, nil) {
            defer { free(real) }
            return String(cString: real)
        }
        logger.warning("zygotes off (python3, php and ruby runs start their interpreter each time): no zygote library; install it with scripts/install or set sandbox.zygote_library", metadata: ["looked at": "\(candidates.joined(separator: ", "))"])
        return nil
    }
}
