import CodesandServer
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's file descriptors. Each connection holds one and each sandbox slot about twenty, so
/// the connection limits must leave the sandboxes theirs: a daemon out of fds fails its runs
/// ("eventfd: Too many open files") and leaves new clients hanging.
enum FileLimit {
    /// Per pool slot: the 6 pipe ends the daemon keeps, their 6 other ends while the sandbox is
    /// spawned, the cgroup.procs files its init joins (up to 5 on cgroup v1), held open, and their
    /// copies while the sandbox is spawned, the run's eventfd, the namespaces it keeps (the
    /// sandbox's network namespace, the kept one, the base and its copy), the cgroup counters held
    /// open (up to 6), and a margin for the files read from the slot's cgroup.
    static let perSlot = 40
    /// Beside the fds open at start, the sandboxes and the connections: zygotes (a socket and pipes
    /// each), config reloads, host commands, /proc reads, refused connections on their way out.
    static let headroom = 128

    /// Raises the soft RLIMIT_NOFILE to the hard limit (systemd starts services at a soft 1024);
    /// returns the soft limit in effect.
    static func raiseSoftLimit(logger: Logger) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 {
                limit = raised
            } else {
                logger.warning("cannot raise the open-file limit", metadata: ["soft": "\(limit.rlim_cur)", "hard": "\(limit.rlim_max)",
                                                                             "errno": "\(errno)"])
            }
        }
        return Int(min(limit.rlim_cur, rlim_t(Int32.max)))
    }

    /// File descriptors open now.
    static func openCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
    }

    /// The configured limits, lowered so that connections and sandboxes together stay under the
    /// open-file limit (at least one connection is always served).
    static func connectionLimits(configured: ConnectionLimits, fileLimit: Int, openNow: Int, poolSize: Int,
                                 logger: Logger) -> ConnectionLimits {
        let room = fileLimit - openNow - poolSize * perSlot - headroom
        guard room < configured.total else { return configured }
        let total = max(1, room)
        logger.warning("rpc.max_connections lowered to fit the open-file limit; raise LimitNOFILE to serve more", metadata: [
            "configured": "\(configured.total)", "max_connections": "\(total)", "open_file_limit": "\(fileLimit)",
            "reserved_for_sandboxes": "\(poolSize * perSlot)"])
        return ConnectionLimits(total: total, perUID: configured.perUID)
    }
}
