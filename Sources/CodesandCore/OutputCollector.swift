import CodesandProtocol

/// Keeps a run's stdout and stderr in arrival order, up to the byte and line caps. Bytes past a
/// cap are counted and dropped (the caller keeps draining the pipes so the program never blocks on
/// a full pipe while it is being killed).
public struct OutputCollector: Sendable {
    public let maxBytes: Int
    public let maxLines: Int
    public private(set) var keptBytes = 0
    public private(set) var keptLines = 0
    public private(set) var droppedBytes = 0
    public private(set) var truncated = false
    /// Arrival-ordered pieces; adjacent pieces of one stream are merged.
    private var segments: [(stream: OutputStream, bytes: [UInt8])] = []

    public init(maxBytes: Int, maxLines: Int) {
        self.maxBytes = maxBytes
        self.maxLines = maxLines
    }

    /// Adds bytes read from one stream. Returns true when this call hit a cap.
    @discardableResult
    public mutating func append(_ bytes: UnsafeRawBufferPointer, from stream: OutputStream) -> Bool {
        if truncated {
            droppedBytes += bytes.count
            return false
        }
        var take = 0
        for byte in bytes {
            if keptBytes + take >= maxBytes || keptLines >= maxLines {
                truncated = true
                break
            }
            take += 1
            if byte == UInt8(ascii: "\n") { keptLines += 1 }
        }
        if take > 0 {
            let piece = bytes[0..<take]
            if let last = segments.indices.last, segments[last].stream == stream {
                segments[last].bytes.append(contentsOf: piece)
            } else {
                segments.append((stream, Array(piece)))
            }
            keptBytes += take
        }
        droppedBytes += bytes.count - take
        return truncated
    }

    public mutating func append(_ bytes: [UInt8], from stream: OutputStream) {
        bytes.withUnsafeBytes { _ = append($0, from: stream) }
    }

    /// Appends `bytes` and returns the part of them that was kept (all, some, or none once the
    /// caps are reached): what a `stream` request's client is sent.
    public mutating func keep(_ bytes: [UInt8], from stream: OutputStream) -> ArraySlice<UInt8> {
        let before = keptBytes
        append(bytes, from: stream)
        return bytes.prefix(keptBytes - before)
    }

    /// The output as text: invalid UTF-8 becomes U+FFFD, NUL bytes are kept. A character cut in
    /// half by a cap is dropped rather than shown as U+FFFD.
    public func texts() -> (stdout: String, stderr: String, output: [OutputChunk]) {
        var stdout: [UInt8] = [], stderr: [UInt8] = []
        var chunks: [OutputChunk] = []
        for (i, seg) in segments.enumerated() {
            var bytes = seg.bytes[...]
            if truncated && i == segments.count - 1 { bytes = Self.droppingIncompleteTail(bytes) }
            if seg.stream == .stdout { stdout.append(contentsOf: bytes) } else { stderr.append(contentsOf: bytes) }
            chunks.append(OutputChunk(stream: seg.stream, text: String(decoding: bytes, as: UTF8.self)))
        }
        return (String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self), chunks)
    }

    /// Drops a trailing UTF-8 sequence that a cut left incomplete.
    static func droppingIncompleteTail(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var i = bytes.endIndex
        var continuation = 0
        while i > bytes.startIndex, continuation < 3, bytes[i - 1] & 0xC0 == 0x80 {
            i -= 1
            continuation += 1
        }
        guard i > bytes.startIndex else { return bytes }
        let lead = bytes[i - 1]
        let needed: Int
        switch lead {
        case 0xC0...0xDF: needed = 1
        case 0xE0...0xEF: needed = 2
        case 0xF0...0xF7: needed = 3
        default: return bytes
        }
        return continuation < needed ? bytes[bytes.startIndex..<(i - 1)] : bytes
    }
}
