import CodesandProtocol

/// Turns a run's output bytes into `OutputChunk`s as they arrive, for `stream` runs. A character
/// split between two reads is held back until it is whole, so every chunk is valid UTF-8.
/// Used from the one thread that supervises the run.
public final class OutputStreamer: @unchecked Sendable {
    private let sink: @Sendable (OutputChunk) -> Void
    private var pending: [OutputStream: [UInt8]] = [:]

    public init(sink: @escaping @Sendable (OutputChunk) -> Void) {
        self.sink = sink
    }

    public func feed(_ bytes: UnsafeRawBufferPointer, from stream: OutputStream) {
        var data = pending[stream] ?? []
        data.append(contentsOf: bytes)
        let whole = OutputCollector.droppingIncompleteTail(data[...])
        pending[stream] = Array(data[whole.endIndex...])
        if !whole.isEmpty { sink(OutputChunk(stream: stream, text: String(decoding: whole, as: UTF8.self))) }
    }

    /// At the end of the run: what is left (a cut character becomes U+FFFD).
    public func finish() {
        for stream in [OutputStream.stdout, .stderr] {
            if let rest = pending[stream], !rest.isEmpty { sink(OutputChunk(stream: stream, text: String(decoding: rest, as: UTF8.self))) }
        }
        pending = [:]
    }
}
