/// JSON text written directly into bytes, for the replies every run sends.
///
/// Why not JSONEncoder: Foundation's encoder builds a tree of boxed values, sorts the keys and
/// walks it again; for one `run` reply that was ~60–100 µs of the daemon's CPU on the request's
/// critical path (a perf profile of paced runs: the largest single item on the event loop). The
/// output is byte for byte what JSONEncoder gives with `.sortedKeys, .withoutEscapingSlashes`
/// (JSONWriterTests compares the two), so clients see no difference.
public struct JSONWriter {
    public internal(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func raw(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func int(_ v: some BinaryInteger) { bytes.append(contentsOf: String(v).utf8) }

    mutating func bool(_ v: Bool) { v ? raw("true") : raw("false") }

    /// A string literal, escaped as JSONEncoder escapes: `"` and `\`, the control characters
    /// (`\b \f \n \r \t`, others as `\u00xx`); everything else, slashes and non-ASCII too, as is.
    public mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { utf8 in
            var start = 0
            for i in 0..<utf8.count {
                let c = utf8[i]
                guard c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<i]))
                start = i + 1
                switch c {
                case UInt8(ascii: "\""): raw("\\\"")
                case UInt8(ascii: "\\"): raw("\\\\")
                case 0x08: raw("\\b")
                case 0x0C: raw("\\f")
                case 0x0A: raw("\\n")
                case 0x0D: raw("\\r")
                case 0x09: raw("\\t")
                default:
                    raw("\\u00")
                    bytes.append(Self.hex[Int(c >> 4)])
                    bytes.append(Self.hex[Int(c & 0xF)])
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<utf8.count]))
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private static let hex = Array("0123456789abcdef".utf8)

    /// `"key":` — keys are written by their callers in sorted order.
    mutating func key(_ k: StaticString, first: Bool = false) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "\""))
        raw(k)
        raw("\":")
    }
}

/// A value that writes its own JSON (the same text its Encodable conformance gives).
public protocol JSONWritable {
    func write(to w: inout JSONWriter)
}

extension OutputChunk: JSONWritable {
    public func write(to w: inout JSONWriter) {
        w.raw("{")
        w.key("stream", first: true)
        w.string(stream.rawValue)
        w.key("text")
        w.string(text)
        w.raw("}")
    }
}

extension RunResult: JSONWritable {
    /// Members in JSONEncoder's sorted order; `exit_code` and `signal` always (null when absent),
    /// `cached` and `compile` only when set (as `encode(to:)`).
    public func write(to w: inout JSONWriter) {
        w.raw("{")
        var first = true
        if let cached { w.key("cached", first: true); w.bool(cached); first = false }
        if let compile { w.key("compile", first: first); compile.write(to: &w); first = false }
        w.key("cpu_ms", first: first); w.int(cpuMs)
        w.key("exit_code")
        if let exitCode { w.int(exitCode) } else { w.raw("null") }
        w.key("memory_peak_bytes"); w.int(memoryPeakBytes)
        w.key("oom_killed"); w.bool(oomKilled)
        w.key("output"); w.raw("[")
        for (i, chunk) in output.enumerated() {
            if i > 0 { w.raw(",") }
            chunk.write(to: &w)
        }
        w.raw("]")
        w.key("signal")
        if let signal { w.string(signal) } else { w.raw("null") }
        w.key("status"); w.string(status.rawValue)
        w.key("stderr"); w.string(stderr)
        w.key("stdout"); w.string(stdout)
        w.key("timed_out"); w.bool(timedOut)
        w.key("truncated"); w.bool(truncated)
        w.key("wall_ms"); w.int(wallMs)
        w.raw("}")
    }
}
