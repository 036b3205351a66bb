/// The limits of a run, declared once: protocol.md's limits table in code. Everything that names a
/// limit goes through it: the wire form (`RunLimits`'s JSON), the config (`[limits.default]`,
/// `[limits.max]`, a language's `limits` and `compile_limits`, the shipped file's text), a request's
/// resolution against the maxima, the `codesand run` flags, and the C client's list (a test checks
/// that it names exactly these keys). A new limit is a new case here; the compiler then asks for its
/// row and for its field in each value type.
public enum Limit: String, CaseIterable, Hashable, Sendable, CodingKey {
    case wallMs = "wall_ms"
    case cpuMs = "cpu_ms"
    case memoryBytes = "memory_bytes"
    case pids
    case outputBytes = "output_bytes"
    case outputLines = "output_lines"

    /// Its name on the wire and in the config.
    public var key: String { rawValue }

    /// Its `codesand run` flag: the key with dashes (`--wall-ms`).
    public var flag: String { String(rawValue.map { $0 == "_" ? "-" : $0 }) }

    public enum Unit: String, Sendable {
        case ms, bytes, count
    }

    /// One row of the table: everything about a limit but a run's value of it.
    public struct Row {
        /// The field of `RunLimits` that holds it.
        public let field: WritableKeyPath<RunLimits, Int64?>
        public let unit: Unit
        /// What it bounds, as protocol.md says it.
        public let meaning: String
        /// The shipped `[limits.default]` and `[limits.max]`.
        public let shippedDefault: Int64
        public let shippedMaximum: Int64
        /// The most a config may set: a guard against a slipped digit, far above any sane maximum.
        public let ceiling: Int64
        /// The least a run can start with, and why when it is more than 1.
        public var minimum: Int64 = 1
        public var minimumReason: String? = nil
    }

    public var row: Row {
        switch self {
        case .wallMs:
            Row(field: \.wallMs, unit: .ms, meaning: "wall-clock time from the program's start",
                shippedDefault: 5000, shippedMaximum: 30000, ceiling: 3_600_000)
        case .cpuMs:
            Row(field: \.cpuMs, unit: .ms, meaning: "CPU time of all the run's processes together",
                shippedDefault: 5000, shippedMaximum: 30000, ceiling: 3_600_000)
        case .memoryBytes:
            Row(field: \.memoryBytes, unit: .bytes,
                meaning: "memory of all the run's processes together (RSS, page cache, files in its tmpfs)",
                shippedDefault: 256 << 20, shippedMaximum: 1 << 30, ceiling: 1 << 40,
                minimum: 4 << 20, minimumReason: "4 MiB")
        case .pids:
            Row(field: \.pids, unit: .count, meaning: "processes and threads alive at once",
                shippedDefault: 64, shippedMaximum: 1024, ceiling: 1 << 20,
                minimum: 2, minimumReason: "the sandbox's init and the program")
        case .outputBytes:
            Row(field: \.outputBytes, unit: .bytes, meaning: "stdout + stderr bytes kept; more kills the run",
                shippedDefault: 65536, shippedMaximum: 1 << 20, ceiling: 1 << 30)
        case .outputLines:
            Row(field: \.outputLines, unit: .count, meaning: "stdout + stderr lines kept; more kills the run",
                shippedDefault: 1000, shippedMaximum: 100_000, ceiling: 1 << 30)
        }
    }

    /// "must be at least 2 (the sandbox's init and the program)", for errors about a value below the minimum.
    public var minimumProblem: String {
        "must be at least \(row.minimum)" + (row.minimumReason.map { " (\($0))" } ?? "")
    }
}

/// Per-request limits (protocol.md, "run"), one optional field per `Limit`. An absent one takes the
/// daemon's default; each must be ≤ the daemon's configured maximum. On the wire each field is named
/// by its `Limit.key` (`wall_ms`, …); see `Limit.row` for units and meanings.
public struct RunLimits: Codable, Hashable, Sendable {
    public var wallMs: Int64?
    public var cpuMs: Int64?
    public var memoryBytes: Int64?
    public var pids: Int64?
    public var outputBytes: Int64?
    public var outputLines: Int64?

    public init(wallMs: Int64? = nil, cpuMs: Int64? = nil, memoryBytes: Int64? = nil, pids: Int64? = nil,
                outputBytes: Int64? = nil, outputLines: Int64? = nil) {
        self.wallMs = wallMs
        self.cpuMs = cpuMs
        self.memoryBytes = memoryBytes
        self.pids = pids
        self.outputBytes = outputBytes
        self.outputLines = outputLines
    }

    /// Each limit's value from `value` (nil: not given).
    public init(_ value: (Limit) throws -> Int64?) rethrows {
        self.init()
        for limit in Limit.allCases { self[limit] = try value(limit) }
    }

    public subscript(limit: Limit) -> Int64? {
        get { self[keyPath: limit.row.field] }
        set { self[keyPath: limit.row.field] = newValue }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Limit.self)
        try self.init { (limit) throws in try c.decodeIfPresent(Int64.self, forKey: limit) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Limit.self)
        for limit in Limit.allCases { try c.encodeIfPresent(self[limit], forKey: limit) }
    }

    /// Reads `params.limits` as the daemon receives it: known keys only, each a positive integer.
    public init(reading r: ParamReader) throws(RPCError) {
        try r.rejectUnknown(allowed: Set(Limit.allCases.map(\.key)))
        self.init()
        for limit in Limit.allCases { self[limit] = try r.positiveInt(limit.key) }
    }
}
