import Logging
import NIOCore
import Synchronization

/// The one way out to the server for a connection: anything may `push` (the session, finished
/// runs), and one writer task sends the lines in the order and at the pace of a ``SendQueue``,
/// each encoded by ``IRCMessage/encoded()`` (which refuses CR, LF, NUL and lines over 512 bytes).
final class Outbox: Sendable {
    private let queue: Mutex<SendQueue>
    private let wakes: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init(burst: Int, interval: Duration) {
        queue = Mutex(SendQueue(burst: burst, perSecond: 1 / max(0.001, interval.seconds), now: .now))
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues a line; false when the queue was full and it was dropped.
    @discardableResult
    func push(_ message: IRCMessage) -> Bool {
        let queued = queue.withLock { $0.push(message) }
        wake.yield()
        return queued
    }

    func finish() {
        wake.finish()
    }

    /// Sends until `finish`, cancellation or a write error (the connection is gone: the reader sees it end).
    func drain(to outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, logger: Logger) async {
        var wakeups = wakes.makeAsyncIterator()
        while !Task.isCancelled {
            switch queue.withLock({ $0.next(now: .now) }) {
            case .send(let message):
                let line: String
                do {
                    line = try message.encoded()
                } catch {
                    logger.info("not sent: the message is not valid IRC", metadata: ["error": "\(error)", "command": "\(message.command)"])
                    continue
                }
                do {
                    try await outbound.write(ByteBuffer(string: line))
                } catch {
                    return
                }
            case .wait(let delay):
                try? await Task.sleep(for: delay)
            case .empty:
                guard await wakeups.next() != nil else { return }
            }
        }
    }
}
