import CodesandProtocol
import Foundation
import NIOCore

/// A request on its way out: the multiplexer files `promise` under `id`, then writes `line`.
struct OutgoingCall: Sendable {
    let id: Int64
    /// The encoded request, ending in `\n`.
    let line: ByteBuffer
    let timeout: TimeAmount?
    let promise: EventLoopPromise<Reply.Outcome>
    /// Gets each `run.output` notification for this call, in order, before the reply completes
    /// `promise`; `nil` ignores them. Called on the channel's event loop.
    var onOutput: (@Sendable (OutputChunk) -> Void)? = nil
}

/// An outbound user event: fail the pending call `id` with `error` (the caller's task was cancelled).
/// A call that already finished is left alone.
struct AbandonCall: Sendable {
    let id: Int64
    let error: CodesandClientError
}

/// Matches replies to the calls in flight on one connection. Replies may come in any order; each
/// carries the id of its request. Runs on the channel's event loop only, so its state needs no lock.
///
/// - A reply whose id is not pending (its call timed out or was cancelled) is dropped.
/// - A `run.output` notification goes to the pending call with its id, if that call asked for
///   output; one for any other id (a call that already ended) is dropped, and so is any other
///   notification. A malformed `run.output` is a malformed line.
/// - A reply with a null id means the daemon could not tell which request it answers (e.g. one was
///   over its size limit; it closes the connection after that): every pending call fails with it.
/// - A malformed reply fails every pending call and closes the connection: after one bad line the
///   stream cannot be trusted.
/// - When the connection closes, every pending call fails with `.connectionClosed`. A call written
///   after that, or whose write fails, fails with `CallNotSent`: the client sends it again on a new
///   connection.
final class CallMultiplexer: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = OutgoingCall
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        let promise: EventLoopPromise<Reply.Outcome>
        let timer: Scheduled<Void>?
        let onOutput: (@Sendable (OutputChunk) -> Void)?
    }

    private var pending: [Int64: Pending] = [:]
    private var isClosed = false

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let call = unwrapOutboundIn(data)
        guard !isClosed else {
            call.promise.fail(CallNotSent())
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        let timer = call.timeout.map { timeout in
            context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
                self.finish(call.id, with: .failure(CodesandClientError.timeout))
            }
        }
        pending[call.id] = Pending(promise: call.promise, timer: timer, onOutput: call.onOutput)

        let written = promise ?? context.eventLoop.makePromise()
        written.futureResult.assumeIsolated().whenFailure { _ in
            // The daemon did not get the whole line, so it did not run it: safe to send again.
            self.finish(call.id, with: .failure(CallNotSent()))
        }
        context.write(wrapOutboundOut(call.line), promise: written)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let abandon = event as? AbandonCall else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        finish(abandon.id, with: .failure(abandon.error))
        promise?.succeed(())
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        if line.readableBytesView.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }
        let reply: Reply
        do {
            switch try InboundMessage.parse(line) {
            case .reply(let r):
                reply = r
            case .notification(let notification):
                try deliver(notification)
                return
            }
        } catch {
            failAll(error)
            context.close(promise: nil)
            return
        }
        switch reply.id {
        case .int(let id)?:
            finish(id, with: .success(reply.outcome))
        case nil:
            switch reply.outcome {
            case .error(let error): failAll(.rpc(error))
            case .result: failAll(.protocolViolation("a result with a null id"))
            }
            context.close(promise: nil)
        case .some:
            break  // An id this client never sends (it uses integers): not ours to answer.
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let tooLong = error as? ReplyLineDecoder.LineTooLong {
            failAll(.protocolViolation(tooLong.description))
        } else {
            failAll(.connectionClosed)
        }
        context.close(promise: nil)
    }

    /// Hands a `run.output` notification to the call it belongs to.
    private func deliver(_ notification: InboundNotification) throws(CodesandClientError) {
        guard notification.method == RPCMethod.runOutput else { return }  // none other is known
        guard let params = notification.params else {
            throw .protocolViolation("a run.output notification without params")
        }
        let output: RunOutputParams
        do {
            output = try JSONDecoder().decode(RunOutputParams.self, from: Data(params.readableBytesView))
        } catch {
            throw .protocolViolation("a run.output notification is malformed: \(error)")
        }
        guard case .int(let id) = output.id, let onOutput = pending[id]?.onOutput else { return }
        onOutput(OutputChunk(stream: output.stream, text: output.text))
    }

    // MARK: State

    private func finish(_ id: Int64, with result: Result<Reply.Outcome, any Error>) {
        guard let call = pending.removeValue(forKey: id) else { return }
        call.timer?.cancel()
        call.promise.completeWith(result)
    }

    private func failAll(_ error: CodesandClientError) {
        isClosed = true
        let calls = pending
        pending.removeAll()
        for call in calls.values {
            call.timer?.cancel()
            call.promise.fail(error)
        }
    }
}
