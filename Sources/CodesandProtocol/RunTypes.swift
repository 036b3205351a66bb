/// Params of the `run` method.
public struct RunParams: Codable, Hashable, Sendable {
    public var language: String
    public var code: String
    /// The program's stdin; absent means empty (at EOF).
    public var stdin: String?
    /// Extra arguments after the program file (argv elements, never a shell string).
    public var args: [String]?
    public var limits: RunLimits?
    /// Who asked (e.g. "nick@#channel"): for logs and fair scheduling.
    public var requester: String?
    /// Flags for the compiler of a compiled language (argv elements, each checked against the
    /// language's allow-list pattern).
    public var compileFlags: [String]?
    /// Send the output as `run.output` notifications while the program runs (protocol.md).
    public var stream: Bool?
    /// false: run the plain way even when an interpreter was started in advance for the language.
    public var prestart: Bool?

    enum CodingKeys: String, CodingKey {
        case language, code, stdin, args, limits, requester, stream, prestart
        case compileFlags = "compile_flags"
    }

    public init(language: String, code: String, stdin: String? = nil, args: [String]? = nil,
                limits: RunLimits? = nil, requester: String? = nil, compileFlags: [String]? = nil, stream: Bool? = nil,
                prestart: Bool? = nil) {
        self.compileFlags = compileFlags
        self.stream = stream
        self.prestart = prestart
        self.language = language
        self.code = code
        self.stdin = stdin
        self.args = args
        self.limits = limits
        self.requester = requester
    }

    static let fields: Set<String> = ["language", "code", "stdin", "args", "limits", "requester", "compile_flags", "stream",
                                      "prestart"]

    /// Reads params as the daemon receives them, with errors naming the field.
    public init(params: JSONValue?) throws(RPCError) {
        let r = try ParamReader(params)
        try r.rejectUnknown(allowed: Self.fields)
        language = try r.requiredString("language")
        code = try r.requiredString("code")
        stdin = try r.string("stdin")
        args = try r.stringArray("args")
        limits = try r.nested("limits").map { (n) throws(RPCError) in try RunLimits(reading: n) }
        requester = try r.string("requester")
        compileFlags = try r.stringArray("compile_flags")
        stream = try r.bool("stream")
        prestart = try r.bool("prestart")
    }
}

/// How a run ended (protocol.md, "RunStatus").
public enum RunStatus: String, Codable, Hashable, Sendable {
    /// Exited with code 0.
    case ok
    /// Exited with a non-zero code.
    case error
    /// Killed by a signal that no limit caused (e.g. SIGSEGV, SIGABRT, or a signal it sent itself).
    case signal
    /// Killed at `wall_ms` or `cpu_ms`.
    case timeout
    /// Killed by the kernel's OOM killer at `memory_bytes`.
    case oom
    /// Killed because its output passed `output_bytes` or `output_lines`.
    case outputLimit = "output_limit"
    /// The compile stage failed (see `compile` for how); the program did not run.
    case compileError = "compile_error"
}

public enum OutputStream: String, Codable, Hashable, Sendable {
    case stdout, stderr
}

/// A piece of output in arrival order.
public struct OutputChunk: Codable, Hashable, Sendable {
    public var stream: OutputStream
    public var text: String
    public init(stream: OutputStream, text: String) {
        self.stream = stream
        self.text = text
    }
}

/// Result of the `run` method. A program's failure is a result, not an error.
public struct RunResult: Codable, Hashable, Sendable {
    public var status: RunStatus
    public var exitCode: Int32?
    public var signal: String?
    public var timedOut: Bool
    public var oomKilled: Bool
    public var truncated: Bool
    public var stdout: String
    public var stderr: String
    public var output: [OutputChunk]
    public var wallMs: Int64
    public var cpuMs: Int64
    public var memoryPeakBytes: Int64
    /// The compile stage of a compiled language, with the same fields (its `compile` is null).
    public var compile: RunResult? {
        get { compileBox?.value }
        set { compileBox = newValue.map(CompileBox.init) }
    }
    private var compileBox: CompileBox?
    /// On a compile stage only: true when the compiled program came from the daemon's compile
    /// cache (the compiler did not run; its stored messages are shown); absent otherwise.
    public var cached: Bool?

    public init(status: RunStatus, exitCode: Int32?, signal: String?, timedOut: Bool, oomKilled: Bool,
                truncated: Bool, stdout: String, stderr: String, output: [OutputChunk],
                wallMs: Int64, cpuMs: Int64, memoryPeakBytes: Int64, compile: RunResult? = nil) {
        self.compileBox = compile.map(CompileBox.init)
        self.status = status
        self.exitCode = exitCode
        self.signal = signal
        self.timedOut = timedOut
        self.oomKilled = oomKilled
        self.truncated = truncated
        self.stdout = stdout
        self.stderr = stderr
        self.output = output
        self.wallMs = wallMs
        self.cpuMs = cpuMs
        self.memoryPeakBytes = memoryPeakBytes
    }

    enum CodingKeys: String, CodingKey {
        case status, signal, truncated, stdout, stderr, output
        case exitCode = "exit_code", timedOut = "timed_out", oomKilled = "oom_killed"
        case wallMs = "wall_ms", cpuMs = "cpu_ms", memoryPeakBytes = "memory_peak_bytes"
        case compile, cached
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        status = try c.decode(RunStatus.self, forKey: .status)
        exitCode = try c.decodeIfPresent(Int32.self, forKey: .exitCode)
        signal = try c.decodeIfPresent(String.self, forKey: .signal)
        timedOut = try c.decode(Bool.self, forKey: .timedOut)
        oomKilled = try c.decode(Bool.self, forKey: .oomKilled)
        truncated = try c.decode(Bool.self, forKey: .truncated)
        stdout = try c.decode(String.self, forKey: .stdout)
        stderr = try c.decode(String.self, forKey: .stderr)
        output = try c.decode([OutputChunk].self, forKey: .output)
        wallMs = try c.decode(Int64.self, forKey: .wallMs)
        cpuMs = try c.decode(Int64.self, forKey: .cpuMs)
        memoryPeakBytes = try c.decode(Int64.self, forKey: .memoryPeakBytes)
        compileBox = try c.decodeIfPresent(RunResult.self, forKey: .compile).map(CompileBox.init)
        cached = try c.decodeIfPresent(Bool.self, forKey: .cached)
    }

    // Always encode exit_code and signal, as null when absent: bots test them for null.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(status, forKey: .status)
        try c.encode(exitCode, forKey: .exitCode)
        try c.encode(signal, forKey: .signal)
        try c.encode(timedOut, forKey: .timedOut)
        try c.encode(oomKilled, forKey: .oomKilled)
        try c.encode(truncated, forKey: .truncated)
        try c.encode(stdout, forKey: .stdout)
        try c.encode(stderr, forKey: .stderr)
        try c.encode(output, forKey: .output)
        try c.encode(wallMs, forKey: .wallMs)
        try c.encode(cpuMs, forKey: .cpuMs)
        try c.encode(memoryPeakBytes, forKey: .memoryPeakBytes)
        if let compile { try c.encode(compile, forKey: .compile) }
        if let cached { try c.encode(cached, forKey: .cached) }
    }
}

/// Holds a nested RunResult (a struct cannot contain itself directly).
final class CompileBox: Hashable, Sendable {
    let value: RunResult
    init(_ value: RunResult) { self.value = value }
    static func == (a: CompileBox, b: CompileBox) -> Bool { a.value == b.value }
    func hash(into h: inout Hasher) { h.combine(value) }
}
