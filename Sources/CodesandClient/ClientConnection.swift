import CodesandProtocol
import Foundation
import NIOCore
import NIOPosix

/// The client's one connection to the daemon, opened again when the daemon went away.
///
/// A bot lives longer than any one daemon process: when codesandd restarts, it closes every
/// connection. Calls in flight then fail with `.connectionClosed` (their runs may or may not have
/// happened, so they are not repeated); the next call opens a new connection. Concurrent callers
/// that find the connection gone share one reconnect.
actor ClientConnection {
    let socketPath: String
    private let loop: any EventLoop
    private let maxReplyBytes: Int
    private var current: Channel?
    private var connecting: Task<Channel, any Error>?
    private var isClosed = false

    init(socketPath: String, loop: any EventLoop, maxReplyBytes: Int) {
        self.socketPath = socketPath
        self.loop = loop
        self.maxReplyBytes = maxReplyBytes
    }

    /// The live connection, connecting first if there is none (or the last one closed).
    func channel() async throws(CodesandClientError) -> Channel {
        guard !isClosed else { throw .connectionClosed }
        if let channel = current, channel.isActive { return channel }
        let task: Task<Channel, any Error>
        if let pending = connecting {
            task = pending
        } else {
            task = Task { [socketPath, loop, maxReplyBytes] in
                try await Self.open(socketPath: socketPath, loop: loop, maxReplyBytes: maxReplyBytes)
            }
            connecting = task
        }
        let channel: Channel
        do {
            channel = try await task.value
        } catch {
            if connecting == task { connecting = nil }
            throw error as? CodesandClientError ?? .connectFailed(path: socketPath, reason: "\(error)")
        }
        if connecting == task {
            connecting = nil
            current = channel
        }
        if isClosed {  // close() came while connecting
            try? await channel.close()
            throw .connectionClosed
        }
        return channel
    }

    /// Forgets `channel` if it is still the current one: a write on it failed, so it is dead even if
    /// NIO has not yet noticed.
    func discard(_ channel: Channel) {
        guard current === channel else { return }
        current = nil
        channel.close(promise: nil)
    }

    /// Closes the connection for good; later calls fail with `.connectionClosed`.
    func close() async {
        isClosed = true
        let channel = current
        current = nil
        try? await channel?.close()
    }

    private static func open(socketPath: String, loop: any EventLoop, maxReplyBytes: Int) async throws -> Channel {
        let bootstrap = ClientBootstrap(group: loop).channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandlers(
                    ByteToMessageHandler(ReplyLineDecoder(maxLength: maxReplyBytes)),
                    CallMultiplexer()
                )
            }
        }
        do {
            return try await bootstrap.connect(unixDomainSocketPath: socketPath).get()
        } catch let error as IOError {
            throw CodesandClientError.connectFailed(path: socketPath, reason: String(cString: strerror(error.errnoCode)))
        } catch {
            throw CodesandClientError.connectFailed(path: socketPath, reason: "\(error)")
        }
    }
}

/// A call that never reached the daemon whole (the connection was already closed, or the write
/// failed): unlike a call lost in flight, it is safe to send again on a new connection.
struct CallNotSent: Error {}
