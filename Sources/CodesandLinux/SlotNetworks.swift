import CSandbox
import Glibc
import Synchronization

/// A slot's network namespace, kept for its next sandbox: a new namespace costs ~0.5 ms of CPU
/// to make, a kworker's teardown after the run, and a loopback to bring up — for every run, most
/// of which never touch the network. The next init enters the kept one only while it is exactly
/// as a fresh one is (its fingerprint, sandbox_netns.c: counters, sockets, flow labels); after a
/// run that used the network it makes a new one, which the slot keeps from then on.
struct KeptNetns {
    /// An nsfs fd (the caller's; the init gets a copy).
    var fd: Int32
    /// cs_netns_fingerprint of a fresh namespace.
    var fingerprint: UInt64
}

final class SlotNetworks: Sendable {
    /// Per slot: the kept namespace's fd, or -1; and a fresh namespace's fingerprint (0: not known yet).
    private let state: Mutex<(fds: [Int32], fresh: UInt64, stopped: Bool)>

    init(slots: Int) {
        state = Mutex((Array(repeating: -1, count: slots), 0, false))
    }

    /// The slot's kept namespace for a spawn, as a copy of the fd (the caller closes it), or nil.
    func lend(_ slot: Int) -> KeptNetns? {
        state.withLock { s in
            guard s.fds[slot] >= 0, s.fresh != 0, !s.stopped else { return nil }
            let copy = fcntl(s.fds[slot], F_DUPFD_CLOEXEC, 3)
            return copy < 0 ? nil : KeptNetns(fd: copy, fingerprint: s.fresh)
        }
    }

    /// After a spawn: a sandbox whose init made a new namespace gives it to the slot (read through
    /// its init, which waits for its job: nothing has run in it yet).
    func keep(_ slot: Int, from sandbox: SandboxInstance) {
        guard sandbox.madeNewNetns else { return }
        let fd = open("/proc/\(sandbox.initPID)/ns/net", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        let fingerprint = cs_netns_fingerprint("/proc/\(sandbox.initPID)/net")
        let old = state.withLock { s -> Int32 in
            guard !s.stopped, fingerprint != 0 else { return fd }
            if s.fresh == 0 { s.fresh = fingerprint }
            // A namespace that does not look fresh right after its init got ready is not kept.
            guard fingerprint == s.fresh else { return fd }
            defer { s.fds[slot] = fd }
            return s.fds[slot]
        }
        if old >= 0 { close(old) }
    }

    /// Daemon shutdown: every kept namespace goes.
    func stop() {
        let fds = state.withLock { s -> [Int32] in
            defer { s.fds = s.fds.map { _ in -1 }; s.stopped = true }
            return s.fds
        }
        for fd in fds where fd >= 0 { close(fd) }
    }
}
