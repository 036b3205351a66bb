import CSandbox
import CodesandCore
import Foundation
import Glibc
import Logging

/// The native backend: each run in a fresh sandbox of new namespaces, private tmpfs mounts and a
/// per-slot cgroup, built by the C init (sandbox_init.c) and supervised on a dedicated thread.
public final class NativeBackend: SandboxBackend {
    public let name = "native"
    public var cgroupVersion: String { driver.version }
    private let driver: CgroupDriver
    private let layout: SandboxLayout
    private let cgroups: [SlotCgroup]
    private let config: SandboxConfig
    private let logger: Logger

    /// Detects the cgroup version, creates the slots' cgroups (emptying leftovers of an earlier
    /// daemon) and the state directory.
    public convenience init(config: SandboxConfig, poolSize: Int, logger: Logger) throws {
        try self.init(config: config, poolSize: poolSize, driver: CgroupDetect.driver(name: config.cgroupName), logger: logger)
    }

    init(config: SandboxConfig, poolSize: Int, driver: CgroupDriver, logger: Logger) throws {
        signal(SIGPIPE, SIG_IGN)  // a sandbox that closes its stdin must not kill the daemon
        try Self.checkUIDsAreFree(base: config.uidBase, count: poolSize)
        self.config = config
        self.driver = driver
        self.logger = logger
        self.layout = try SandboxLayout(config: config)
        self.cgroups = try (0..<poolSize).map { try driver.slot($0) }
    }

    public func run(_ job: SandboxJob, slot: Int) async throws -> SandboxOutcome {
        let cancelFD = cs_eventfd()
        guard cancelFD >= 0 else { throw SandboxError("eventfd", errno: errno) }
        defer { close(cancelFD) }
        let work: @Sendable () throws -> SandboxOutcome = { [layout, cgroups, config] in
            let sandbox = try SandboxInstance.spawn(layout: layout, uid: config.uidBase + UInt32(slot),
                                                    cgroup: cgroups[slot], limits: job.limits)
            return try RunSupervisor(sandbox: sandbox, job: job,
                                     rlimits: (config.fileSizeBytes, config.openFiles), cancelFD: cancelFD).run()
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<SandboxOutcome, any Error>) in
                // A thread of its own: the supervisor blocks in poll(), which must not starve Swift's pool.
                let thread = Thread { c.resume(with: Result { try work() }) }
                thread.name = "codesand-slot-\(slot)"
                thread.start()
            }
        } onCancel: {
            var one: UInt64 = 1
            _ = write(cancelFD, &one, 8)
        }
    }

    /// Sandbox uids must belong to nobody on the host, or a sandbox could touch that user's files.
    static func checkUIDsAreFree(base: UInt32, count: Int) throws {
        for i in 0..<UInt32(count) {
            if let pw = getpwuid(base + i) {
                throw SandboxError("sandbox uid \(base + i) belongs to host user \(String(cString: pw.pointee.pw_name)); change sandbox.uid_base")
            }
        }
    }

    /// Processes in the slots' cgroups now (none between runs: the pool's own count is zero).
    public func leftoverProcesses() -> [pid_t] { cgroups.flatMap { $0.processes() } }

    /// Empties and removes the slots' cgroups (daemon shutdown).
    public func shutdown() {
        for cg in cgroups {
            cg.killAll(timeoutMs: 5000)
            cg.remove()
        }
    }
}
