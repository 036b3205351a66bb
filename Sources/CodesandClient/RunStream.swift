import CodesandProtocol

/// What a streaming run yields: its output while it runs, then how it ended.
public enum RunEvent: Hashable, Sendable {
    /// A piece of output as the daemon read it (valid UTF-8; a chunk never splits a character).
    case output(OutputChunk)
    /// The run's result, with the complete output as ``CodesandClient/run(_:timeout:)`` returns it.
    /// Always the last event.
    case finished(RunResult)
}

extension CodesandClient {
    /// Runs a snippet and yields its output as it arrives (`run` with `"stream": true`).
    ///
    /// ```swift
    /// for try await event in client.runStreaming(RunParams(language: "python3", code: code)) {
    ///     switch event {
    ///     case .output(let chunk): print(chunk.text, terminator: "")
    ///     case .finished(let result): print("exit", result.exitCode ?? -1)
    ///     }
    /// }
    /// ```
    ///
    /// The call starts at once, without waiting for the sequence to be iterated. It yields one
    /// `.output` per `run.output` notification, in order, then `.finished` with the result, and
    /// ends. It throws ``CodesandClientError`` as `run` does: `.rpc` when the daemon answers with
    /// an error (`.output` events may have come before it), `.connectionClosed` when the connection
    /// is lost, `.timeout` after `timeout` (which covers the whole call). Cancelling the task that
    /// iterates, or dropping the iterator before the end, cancels the call; an iteration that was
    /// cancelled throws `.cancelled`. As with `run`, the daemon is not told: the run goes on until
    /// it ends or the connection closes, and its late notifications and reply are dropped.
    /// - Parameter params: sent with `stream` set to true.
    public func runStreaming(_ params: RunParams, timeout: Duration? = nil) -> RunStream {
        var params = params
        params.stream = true
        let (events, continuation) = AsyncThrowingStream.makeStream(of: RunEvent.self)
        let task = Task {
            do throws(CodesandClientError) {
                let bytes = try await send(RPCMethod.run, params, timeout: timeout) { chunk in
                    continuation.yield(.output(chunk))
                }
                continuation.yield(.finished(try decode(RunResult.self, RPCMethod.run, from: bytes)))
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return RunStream(events: events)
    }
}

/// The events of one streaming run (``CodesandClient/runStreaming(_:timeout:)``): zero or more
/// `.output`, then `.finished`. Iterate it once; it throws ``CodesandClientError``.
public struct RunStream: AsyncSequence, Sendable {
    public typealias Element = RunEvent
    public typealias Failure = CodesandClientError

    let events: AsyncThrowingStream<RunEvent, any Error>

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: events.makeAsyncIterator())
    }

    /// Collects the events: the output chunks as they came, and the result.
    public func collect() async throws(CodesandClientError) -> (output: [OutputChunk], result: RunResult) {
        var output: [OutputChunk] = []
        for try await event in self {
            switch event {
            case .output(let chunk): output.append(chunk)
            case .finished(let result): return (output, result)
            }
        }
        throw .connectionClosed  // not reached: the iterator throws when the sequence ends without a result
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        public typealias Element = RunEvent
        public typealias Failure = CodesandClientError

        var base: AsyncThrowingStream<RunEvent, any Error>.Iterator
        private var isDone = false

        init(base: AsyncThrowingStream<RunEvent, any Error>.Iterator) {
            self.base = base
        }

        public mutating func next() async throws(CodesandClientError) -> RunEvent? {
            try await next(isolation: nil)
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(CodesandClientError) -> RunEvent? {
            guard !isDone else { return nil }
            let event: RunEvent?
            do {
                event = try await base.next(isolation: actor)
            } catch {
                isDone = true
                throw error as? CodesandClientError ?? .connectionClosed
            }
            switch event {
            case .output?:
                break
            case .finished?:
                isDone = true
            case nil:
                // The underlying stream ends early only when the iterating task was cancelled.
                isDone = true
                throw Task.isCancelled ? .cancelled : .connectionClosed
            }
            return event
        }
    }
}
