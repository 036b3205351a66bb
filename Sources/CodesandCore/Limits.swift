import CodesandProtocol

/// One value for each limit of a run (`Limit`; units as in protocol.md: ms, bytes, counts).
public struct LimitSet: Hashable, Sendable {
    public var wallMs: Int64
    public var cpuMs: Int64
    public var memoryBytes: Int64
    public var pids: Int64
    public var outputBytes: Int64
    public var outputLines: Int64

    public init(wallMs: Int64, cpuMs: Int64, memoryBytes: Int64, pids: Int64, outputBytes: Int64, outputLines: Int64) {
        self.wallMs = wallMs
        self.cpuMs = cpuMs
        self.memoryBytes = memoryBytes
        self.pids = pids
        self.outputBytes = outputBytes
        self.outputLines = outputLines
    }

    /// Each limit's value from `value`.
    public init(_ value: (Limit) throws -> Int64) rethrows {
        self.init(wallMs: 0, cpuMs: 0, memoryBytes: 0, pids: 0, outputBytes: 0, outputLines: 0)
        for limit in Limit.allCases { self[limit] = try value(limit) }
    }

    public subscript(limit: Limit) -> Int64 {
        get { self[keyPath: Self.field(limit)] }
        set { self[keyPath: Self.field(limit)] = newValue }
    }

    /// The field that holds `limit` (the table's other fields are in `Limit.row`).
    static func field(_ limit: Limit) -> WritableKeyPath<LimitSet, Int64> {
        switch limit {
        case .wallMs: \.wallMs
        case .cpuMs: \.cpuMs
        case .memoryBytes: \.memoryBytes
        case .pids: \.pids
        case .outputBytes: \.outputBytes
        case .outputLines: \.outputLines
        }
    }

    /// The limits of one run: the request's values over the defaults, each checked against the maximum.
    public static func resolve(_ requested: RunLimits?, defaults: LimitSet, max: LimitSet) throws(RPCError) -> LimitSet {
        var out = defaults
        for limit in Limit.allCases {
            guard let value = requested?[limit] else { continue }
            if value > max[limit] {
                throw .invalidParams("params.limits.\(limit.key) is \(value), above this daemon's maximum of \(max[limit])")
            }
            // Below its minimum a sandbox cannot even start its init and the program.
            if value < limit.row.minimum { throw .invalidParams("params.limits.\(limit.key) \(limit.minimumProblem)") }
            out[limit] = value
        }
        return out
    }
}

extension RunLimits {
    /// Each value no higher than the maximum: an admin's lower maxima win over a language's defaults.
    func capped(by max: LimitSet) -> RunLimits {
        RunLimits { limit in self[limit].map { min($0, max[limit]) } }
    }
}
