import class CodesandClient.EventLoopTaskExecutor
import CodesandCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's listening socket: binds (or adopts a systemd-passed fd), sets group and mode,
/// and gives each connection a gate (the connection limits), a framing decoder and a
/// ConnectionHandler.
public final class RPCServer: Sendable {
    public let dispatcher: Dispatcher
    public let tracker: RequestTracker
    let maxMessageBytes: Int
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    public let connectionLimits: ConnectionLimits
    let connections: NIOLockedValueBox<ConnectionCounts>

    public init(dispatcher: Dispatcher, tracker: RequestTracker, maxMessageBytes: Int,
                connectionLimits: ConnectionLimits = ConnectionLimits(total: 256, perUID: 64), logger: Logger) {
        self.dispatcher = dispatcher
        self.tracker = tracker
        self.maxMessageBytes = maxMessageBytes
        self.connectionLimits = connectionLimits
        self.connections = NIOLockedValueBox(ConnectionCounts(limits: connectionLimits))
        self.logger = logger
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    /// An executor on the server's event loop for work that never blocks (SlotPool.preparesPrefer),
    /// when the backend never blocks its caller; nil otherwise.
    public var loopExecutor: (any TaskExecutor)? {
        dispatcher.service.backend.neverBlocksItsCaller ? EventLoopTaskExecutor(group.next()) : nil
    }

    /// Connections being served now.
    public var connectionCount: Int { connections.withLockedValue { $0.total } }

    private func bootstrap() -> ServerBootstrap {
        // Requests run on their connection's event loop when the backend never blocks (the native
        // one), else on Swift's pool (LXD's runs wait on the host's cgroup files).
        var onLoop: (@Sendable (any EventLoop) -> (any TaskExecutor)?)? = nil
        if dispatcher.service.backend.neverBlocksItsCaller {
            onLoop = { @Sendable (loop: any EventLoop) -> (any TaskExecutor)? in EventLoopTaskExecutor(loop) }
        }
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            // accept() failing with EMFILE/ENFILE (no fd left) leaves the listening socket readable:
            // without a pause before the next try, the event loop spins at 100% CPU (AcceptPause.swift).
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptPauseHandler(pause: .milliseconds(200)))
                }
            }
            // A client that shuts down its sending side (`echo … | socat`) still gets its replies.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { [dispatcher, tracker, maxMessageBytes, logger, connections, onLoop] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ConnectionGate(counts: connections, metrics: dispatcher.service.metrics, logger: logger))
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maxLength: maxMessageBytes)))
                    try channel.pipeline.syncOperations.addHandler(
                        ConnectionHandler(dispatcher: dispatcher, tracker: tracker, logger: logger,
                                          taskExecutor: onLoop))
                }
            }
    }

    /// Binds the unix socket at `path` with the given group (if it exists) and mode.
    public func bind(path: String, group groupName: String, mode: UInt32) async throws -> Channel {
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        // The socket is born 0777 & ~umask; with the daemon's umask 022 others cannot connect
        // (connecting needs write permission) until chmod below opens it to the group.
        let channel = try await bootstrap().bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        if let gr = getgrnam(groupName) {
            if chown(path, uid_t.max, gr.pointee.gr_gid) != 0 {
                logger.warning("cannot set the socket's group", metadata: ["path": "\(path)", "errno": "\(errno)"])
            }
            chmod(path, mode_t(mode))
        } else {
            chmod(path, 0o600)  // said so below: not the mode meant for a group that is missing
            logger.warning("socket group does not exist; the socket is root-only (0600). Create it: groupadd \(groupName)",
                           metadata: ["path": "\(path)"])
        }
        return channel
    }

    /// Serves on an already listening socket (systemd socket activation, fd 3).
    public func adopt(fd: Int32) async throws -> Channel {
        try await bootstrap().withBoundSocket(fd).get()
    }

    /// The graceful stop of the serving side: new requests get -32003 and so does every run still
    /// waiting for a sandbox; the listening socket closes; runs in flight finish up to `grace`, then
    /// are cancelled (killed and answered). Returns once every request in flight has its reply (or
    /// 5 s after the cancel, for one that ignores it).
    public func drain(listening channel: Channel, grace: Duration) async {
        tracker.stop()
        dispatcher.service.stop()
        try? await channel.close()
        if !(await tracker.waitUntilIdle(timeout: grace)) {
            logger.warning("killing the runs still in flight", metadata: ["in_flight": "\(tracker.inFlight)"])
            tracker.cancelAll()
            if !(await tracker.waitUntilIdle(timeout: .seconds(5))) {
                logger.error("requests still in flight after their cancel", metadata: ["in_flight": "\(tracker.inFlight)"])
            }
        }
        try? await Task.sleep(for: .milliseconds(50))  // let the last replies leave the socket buffers
    }

    public func shutdownEventLoops() async throws {
        try await group.shutdownGracefully()
    }
}
