import CodesandCore
import CodesandServer
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

// The daemon's long-lived parts, run by one ServiceGroup (Daemon.run) in this order:
//
//     pool → watchdog → server → reload
//
// The group starts them together. On SIGTERM or SIGINT (the group's graceful shutdown signals;
// one during start-up is passed on by Daemon.run) it shuts them down one at a time in reverse
// order, each once the one after it has returned: a reload under way finishes (as before: one
// signal at a time); the server stops accepting and drains (runs in flight finish up to the
// grace, then are killed; every request gets its reply); the watchdog, which pinged through the
// drain, stops; and last the pool's sandboxes are killed and their cgroups removed, when no run
// can use them any more. Then `run()` returns: exit 0. A second SIGTERM meanwhile changes
// nothing. If a service fails (the socket cannot be bound), the group cancels the others: the
// pool still cleans up, the waits are cut short.

/// The sandbox pool and its backend: prepares the slots from the start; kills every sandbox and
/// removes the slots' cgroups at the end.
struct PoolService: Service {
    let service: RunService
    let backend: any SandboxBackend

    func run() async {
        service.start()
        try? await gracefulShutdown()  // or the group is cancelled: clean up all the same
        await backend.shutdown()
    }
}

/// systemd's watchdog: a ping at half its interval while the pool's scheduler answers. Not "while
/// a slot works": a pool that cannot prepare sandboxes answers every run at once with -32603 and
/// the cause (a missing image…), which a restart would not fix, and a restart loop would leave
/// clients hanging instead.
struct WatchdogService: Service {
    let notify: SystemdNotify
    let interval: Duration
    let healthy: @Sendable () -> Bool

    func run() async {
        try? await cancelWhenGracefulShutdown { [notify, interval, healthy] in
            while true {
                if healthy() { notify.send("WATCHDOG=1") }
                try await Task.sleep(for: interval / 2)
            }
        }
    }
}

/// Where the server listens: the socket systemd passed (socket activation) or a path of its own.
enum ListenAddress: Sendable {
    case systemd(fd: Int32)
    case path(String, group: String, mode: UInt32)
}

/// The socket could not be bound or adopted: the daemon exits 1.
struct ListenFailure: Error, CustomStringConvertible {
    let underlying: any Error
    var description: String { "cannot listen: \(underlying)" }
}

/// The JSON-RPC server. It listens from inside the group, so the socket never exists before
/// SIGTERM is trapped (its default action would end the daemon without cleaning up); serves until
/// the graceful shutdown; then drains (`RPCServer.drain`).
struct ServerService: Service {
    let server: RPCServer
    let address: ListenAddress
    /// How long runs in flight may go on after SIGTERM: the longest allowed wall time plus 1 s.
    let grace: Duration
    let notify: SystemdNotify
    let logger: Logger
    /// Listening: log it and tell systemd.
    let onReady: @Sendable () -> Void

    func run() async throws {
        let channel: Channel
        do {
            switch address {
            case .systemd(let fd):
                channel = try await server.adopt(fd: fd)
                logger.info("serving on the socket passed by systemd", metadata: ["fd": "\(fd)"])
            case .path(let path, let group, let mode):
                channel = try await server.bind(path: path, group: group, mode: mode)
                logger.info("serving", metadata: ["socket": "\(path)"])
            }
        } catch {
            throw ListenFailure(underlying: error)
        }
        onReady()
        try? await gracefulShutdown()
        let inFlight = server.tracker.inFlight
        notify.send("STOPPING=1\nSTATUS=stopping: \(inFlight) requests in flight")
        logger.info("stopping: no new requests; letting runs in flight finish", metadata: ["in_flight": "\(inFlight)"])
        await server.drain(listening: channel, grace: grace)
        try? await server.shutdownEventLoops()
    }
}

/// SIGHUP re-reads the config. Not a shutdown signal, so a signal source of its own, trapped by
/// Daemon.run before the group starts (SIGHUP's default action would end the daemon). Ends at the
/// graceful shutdown, after a reload under way; a SIGHUP after that is ignored.
struct ReloadService: Service {
    let hangups: UnixSignalsSequence
    let reload: @Sendable () async -> Void

    func run() async {
        for await _ in hangups.cancelOnGracefulShutdown() {
            await reload()
        }
    }
}
