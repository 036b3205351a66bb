/// A `run` result read from the reply's bytes through JSONParser, not Foundation's decoder: a
/// bot's client reads one per snippet, and JSONDecoder was about a quarter of the client's CPU
/// per run (a profile of `codesand bench`). It accepts what `RunResult.init(from:)` accepts and
/// gives the same value (JSONReaderTests compares the two); unknown members are ignored, as there.
public protocol JSONReadable {
    init(json: JSONValue) throws(JSONShapeError)
}

/// Why a JSON value is not the type asked for: the member and what was wrong with it.
public struct JSONShapeError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ member: String, _ problem: String) { description = "\"\(member)\": \(problem)" }
}

extension JSONReadable {
    /// Parses `bytes` (one JSON text) and reads it as `Self`.
    public static func read(_ bytes: [UInt8]) throws -> Self {
        try Self(json: try JSONParser.parse(bytes))
    }
}

/// The members of one object, each read with the member's name in its error.
struct MemberReader {
    let members: [String: JSONValue]

    init(_ value: JSONValue, _ what: String) throws(JSONShapeError) {
        guard let m = value.objectValue else { throw JSONShapeError(what, "expected an object, got \(value.typeName)") }
        members = m
    }

    /// nil when absent or null (as decodeIfPresent).
    func optional<T>(_ key: String, _ read: (JSONValue) -> T?, _ type: String) throws(JSONShapeError) -> T? {
        guard let v = members[key], v != .null else { return nil }
        guard let t = read(v) else { throw JSONShapeError(key, "expected \(type), got \(v.typeName)") }
        return t
    }

    func required<T>(_ key: String, _ read: (JSONValue) -> T?, _ type: String) throws(JSONShapeError) -> T {
        guard let t = try optional(key, read, type) else { throw JSONShapeError(key, "missing") }
        return t
    }

    static func string(_ v: JSONValue) -> String? { v.stringValue }
    static func bool(_ v: JSONValue) -> Bool? { if case .bool(let b) = v { return b }; return nil }
    static func int<I: FixedWidthInteger>(_ v: JSONValue) -> I? {
        switch v {
        case .int(let i): return I(exactly: i)
        case .double(let d): return I(exactly: d)  // 3.0 is 3, as JSONDecoder reads it
        default: return nil
        }
    }
}

extension OutputChunk: JSONReadable {
    public init(json: JSONValue) throws(JSONShapeError) {
        let r = try MemberReader(json, "output")
        let name = try r.required("stream", MemberReader.string, "a string")
        guard let stream = OutputStream(rawValue: name) else { throw JSONShapeError("stream", "unknown stream \"\(name)\"") }
        self.init(stream: stream, text: try r.required("text", MemberReader.string, "a string"))
    }
}

extension RunResult: JSONReadable {
    public init(json: JSONValue) throws(JSONShapeError) {
        let r = try MemberReader(json, "result")
        let statusName = try r.required("status", MemberReader.string, "a string")
        guard let status = RunStatus(rawValue: statusName) else { throw JSONShapeError("status", "unknown status \"\(statusName)\"") }
        guard case .array(let items)? = r.members["output"] else {
            throw JSONShapeError("output", r.members["output"].map { "expected an array, got \($0.typeName)" } ?? "missing")
        }
        var output: [OutputChunk] = []
        output.reserveCapacity(items.count)
        for item in items { output.append(try OutputChunk(json: item)) }
        let compile: RunResult?
        if let c = r.members["compile"], c != .null { compile = try RunResult(json: c) } else { compile = nil }
        self.init(status: status, exitCode: try r.optional("exit_code", MemberReader.int, "an integer"),
                  signal: try r.optional("signal", MemberReader.string, "a string"),
                  timedOut: try r.required("timed_out", MemberReader.bool, "a boolean"),
                  oomKilled: try r.required("oom_killed", MemberReader.bool, "a boolean"),
                  truncated: try r.required("truncated", MemberReader.bool, "a boolean"),
                  stdout: try r.required("stdout", MemberReader.string, "a string"),
                  stderr: try r.required("stderr", MemberReader.string, "a string"), output: output,
                  wallMs: try r.required("wall_ms", MemberReader.int, "an integer"),
                  cpuMs: try r.required("cpu_ms", MemberReader.int, "an integer"),
                  memoryPeakBytes: try r.required("memory_peak_bytes", MemberReader.int, "an integer"), compile: compile)
        cached = try r.optional("cached", MemberReader.bool, "a boolean")
    }
}
