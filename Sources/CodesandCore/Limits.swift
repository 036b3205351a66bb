import CodesandProtocol

extension LimitSet {
    /// The limits of one run: the request's values over the defaults, each checked against the maximum.
    public static func resolve(_ requested: RunLimits?, defaults: LimitSet, max: LimitSet) throws(RPCError) -> LimitSet {
        var out = defaults
        guard let r = requested else { return out }
        func pick(_ value: Int64?, _ name: String, _ maximum: Int64, _ fallback: Int64) throws(RPCError) -> Int64 {
            guard let value else { return fallback }
            if value > maximum {
                throw .invalidParams("params.limits.\(name) is \(value), above this daemon's maximum of \(maximum)")
            }
            return value
        }
        out.wallMs = try pick(r.wallMs, "wall_ms", max.wallMs, defaults.wallMs)
        out.cpuMs = try pick(r.cpuMs, "cpu_ms", max.cpuMs, defaults.cpuMs)
        out.memoryBytes = try pick(r.memoryBytes, "memory_bytes", max.memoryBytes, defaults.memoryBytes)
        out.pids = try pick(r.pids, "pids", max.pids, defaults.pids)
        out.outputBytes = try pick(r.outputBytes, "output_bytes", max.outputBytes, defaults.outputBytes)
        out.outputLines = try pick(r.outputLines, "output_lines", max.outputLines, defaults.outputLines)
        // Below these a sandbox cannot even start its init and the program.
        if out.memoryBytes < 4 << 20 {
            throw .invalidParams("params.limits.memory_bytes must be at least 4194304 (4 MiB)")
        }
        if out.pids < 2 { throw .invalidParams("params.limits.pids must be at least 2 (the sandbox's init and the program)") }
        return out
    }
}
