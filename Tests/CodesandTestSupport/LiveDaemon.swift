import CodesandCore
import CodesandLinux
import CodesandServer
import Foundation
import Logging
import NIOCore
import Synchronization
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Real sandboxes need root (namespaces, mounts, cgroups). CI runs as root, so these always run there.
public func requireRoot() throws {
    try XCTSkipUnless(getuid() == 0, "needs root: runs a real codesandd (namespaces, mounts, cgroups)")
}

/// Warnings and worse: what a daemon in a test says about itself.
public let liveDaemonLogger: Logger = {
    var logger = Logger(label: "codesand-live-daemon")
    logger.logLevel = .warning
    return logger
}()

/// codesandd in this process, on a temporary socket: the native backend, the run service and the
/// socket server, as the daemon wires them. Its cgroup, state dir and uids are its own (each
/// instance gets a new name, so nothing a previous test's daemon still does at its end can reach
/// this one's sandboxes), so it touches neither a daemon on this machine nor the SandboxTests' one.
public final class LiveDaemon: @unchecked Sendable {
    private static let instances = Atomic<Int>(0)

    public let path: String
    public let config: CodesandConfig
    public let backend: NativeBackend
    public let service: RunService
    private var server: RPCServer?
    private var listener: Channel?

    public init(pool: Int = 2) async throws {
        let name = "codesand-live-test-\(getpid())-\(Self.instances.add(1, ordering: .relaxed).newValue)"
        var c = try CodesandConfig.defaults()
        c.poolSize = pool
        c.maxRunning = pool  // all of the pool at once
        c.sandbox.cgroupName = name
        c.sandbox.stateDir = "/run/\(name)"
        // Above the band SandboxTests use (2_147_000_000 + pid % 10_000 * 64 + 0…63).
        c.sandbox.uidBase = 2_148_000_000 + UInt32(getpid() % 10_000) * 16
        c.queueMaxWaitMs = 30_000
        config = c
        backend = try NativeBackend(config: c.sandbox, poolSize: c.poolSize, defaultLimits: c.defaultLimits, logger: liveDaemonLogger)
        let languages = await LanguageDetector.detect(c.languages, backend: backend, config: c.sandbox, logger: liveDaemonLogger)
        service = RunService(config: c, languages: languages, backend: backend, version: "test", logger: liveDaemonLogger)
        service.start()
        path = "/tmp/codesand-live-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let ready = await service.waitUntilReady()
        XCTAssertTrue(ready, "the sandbox pool did not get ready")
        try await serve()
    }

    /// Binds the socket and serves, as a daemon does when it starts.
    public func serve() async throws {
        let tracker = RequestTracker()
        let server = RPCServer(dispatcher: Dispatcher(service: service, isShuttingDown: { tracker.isStopping }),
                               tracker: tracker, maxMessageBytes: config.maxMessageBytes, logger: liveDaemonLogger)
        self.server = server
        listener = try await server.bind(path: path, group: "codesand", mode: 0o660)
    }

    /// Stops serving as a daemon does when it stops: the socket and every connection close.
    public func stopServing() async {
        try? await listener?.close()
        try? await server?.shutdownEventLoops()  // closes the connections still open
        listener = nil
        server = nil
    }

    public func shutdown() async {
        service.stop()
        await stopServing()
        backend.shutdown()
        unlink(path)
        removeEmptyLeftovers()
    }

    /// The backend leaves its parent cgroup and state dir, and now and then a slot cgroup whose last
    /// task was still exiting; remove them once empty (rmdir only: nothing that still holds
    /// something is touched), retrying for a moment while dying tasks leave.
    private func removeEmptyLeftovers() {
        let name = config.sandbox.cgroupName
        let controllers = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []
        let parents = controllers.map { "/sys/fs/cgroup/\($0)/\(name)" } + ["/sys/fs/cgroup/\(name)"]
        for _ in 0..<20 {
            var left = false
            for parent in parents where FileManager.default.fileExists(atPath: parent) {
                let slots = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
                for slot in slots where slot.hasPrefix("slot-") { rmdir("\(parent)/\(slot)") }
                if rmdir(parent) != 0 { left = true }
            }
            if !left { break }
            usleep(50_000)
        }
        let state = config.sandbox.stateDir
        unlink("\(state)/\(name).lock")
        rmdir("\(state)/root")
        rmdir(state)
    }
}
