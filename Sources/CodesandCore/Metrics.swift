import Synchronization

/// The daemon's counters, kept in memory and rendered as Prometheus text (`metrics` method).
/// Written here rather than with a metrics library: a handful of series, rendered on request.
public final class Metrics: Sendable {
    /// Upper bounds of the run latency histogram, in seconds.
    static let buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

    struct Histogram {
        var counts = [Int64](repeating: 0, count: Metrics.buckets.count)
        var sum = 0.0
        var count: Int64 = 0
        mutating func observe(_ v: Double) {
            for (i, b) in Metrics.buckets.enumerated() where v <= b { counts[i] += 1 }
            sum += v
            count += 1
        }
    }

    struct State {
        var runs: [RunKey: Int64] = [:]
        var latency = Histogram()           // request received → reply ready (queue wait included)
        var resets = Histogram()
        var kills: [String: Int64] = [:]    // why a run was killed: timeout, oom, output_limit, cancelled
        var errors: [Int: Int64] = [:]      // JSON-RPC errors by code
        var recentWallMs: [Int64] = []
        var prestart: [String: (hits: Int64, misses: Int64)] = [:]
        var compileCache: [String: (hits: Int64, misses: Int64)] = [:]
    }

    struct RunKey: Hashable {
        var language: String
        var status: String
    }

    private let state = Mutex(State())

    public init() {}

    public func recordRun(language: String, status: String, latencySeconds: Double, wallMs: Int64) {
        state.withLock { s in
            s.runs[RunKey(language: language, status: status), default: 0] += 1
            s.latency.observe(latencySeconds)
            s.recentWallMs.append(wallMs)
            if s.recentWallMs.count > 64 { s.recentWallMs.removeFirst(s.recentWallMs.count - 64) }
            if ["timeout", "oom", "output_limit"].contains(status) { s.kills[status, default: 0] += 1 }
        }
    }

    /// A run of a pre-startable language found its interpreter waiting (hit) or not (miss).
    public func recordPrestart(language: String, hit: Bool) {
        state.withLock { s in
            var c = s.prestart[language] ?? (0, 0)
            if hit { c.hits += 1 } else { c.misses += 1 }
            s.prestart[language] = c
        }
    }

    /// A run of a language whose compile can be cached found its program in the compile cache
    /// (hit) or compiled (miss, also when the backend keeps no cache).
    public func recordCompileCache(language: String, hit: Bool) {
        state.withLock { s in
            var c = s.compileCache[language] ?? (0, 0)
            if hit { c.hits += 1 } else { c.misses += 1 }
            s.compileCache[language] = c
        }
    }

    public func compileCacheCounts(_ language: String) -> (hits: Int64, misses: Int64) {
        state.withLock { $0.compileCache[language] ?? (0, 0) }
    }

    public func prestartCounts(_ language: String) -> (hits: Int64, misses: Int64) {
        state.withLock { $0.prestart[language] ?? (0, 0) }
    }

    public func recordKill(_ reason: String) { state.withLock { $0.kills[reason, default: 0] += 1 } }
    public func recordError(code: Int) { state.withLock { $0.errors[code, default: 0] += 1 } }
    public func recordReset(seconds: Double) { state.withLock { $0.resets.observe(seconds) } }

    public var runsTotal: Int64 { state.withLock { $0.runs.values.reduce(0, +) } }

    public var runsByStatus: [String: Int64] {
        state.withLock { s in
            var out: [String: Int64] = [:]
            for (k, v) in s.runs { out[k.status, default: 0] += v }
            return out
        }
    }

    /// Mean wall time of recent runs, in ms (for busy replies' retry hint).
    public var recentMeanWallMs: Int64 {
        state.withLock { s in s.recentWallMs.isEmpty ? 100 : s.recentWallMs.reduce(0, +) / Int64(s.recentWallMs.count) }
    }

    /// Prometheus text exposition format 0.0.4.
    public func render(slots: [String: Int], queued: Int, uptimeSeconds: Int64, slotFailures: Int64,
                       poolUnavailable: Bool = false) -> String {
        let s = state.withLock { $0 }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        family("codesand_runs_total", "counter", "Runs finished, by language and how they ended.")
        for (k, v) in s.runs.sorted(by: { ($0.key.language, $0.key.status) < ($1.key.language, $1.key.status) }) {
            out += "codesand_runs_total{language=\"\(escape(k.language))\",status=\"\(k.status)\"} \(v)\n"
        }
        family("codesand_run_latency_seconds", "histogram", "Time from a run request to its reply, queue wait included.")
        histogram("codesand_run_latency_seconds", s.latency, into: &out)
        family("codesand_kills_total", "counter", "Runs killed by codesand, by reason.")
        for reason in ["timeout", "oom", "output_limit", "cancelled"] {
            out += "codesand_kills_total{reason=\"\(reason)\"} \(s.kills[reason] ?? 0)\n"
        }
        family("codesand_rpc_errors_total", "counter", "JSON-RPC error replies, by code.")
        for (code, v) in s.errors.sorted(by: { $0.key < $1.key }) { out += "codesand_rpc_errors_total{code=\"\(code)\"} \(v)\n" }
        family("codesand_prestart_total", "counter", "Runs of pre-startable languages, by whether their interpreter was waiting.")
        for (lang, c) in s.prestart.sorted(by: { $0.key < $1.key }) {
            out += "codesand_prestart_total{language=\"\(escape(lang))\",result=\"hit\"} \(c.hits)\n"
            out += "codesand_prestart_total{language=\"\(escape(lang))\",result=\"miss\"} \(c.misses)\n"
        }
        family("codesand_compile_cache_total", "counter", "Runs of cacheable compiled languages, by whether the compile cache had the program.")
        for (lang, c) in s.compileCache.sorted(by: { $0.key < $1.key }) {
            out += "codesand_compile_cache_total{language=\"\(escape(lang))\",result=\"hit\"} \(c.hits)\n"
            out += "codesand_compile_cache_total{language=\"\(escape(lang))\",result=\"miss\"} \(c.misses)\n"
        }
        family("codesand_slots", "gauge", "Sandbox slots by state.")
        for state in SlotState.allCases { out += "codesand_slots{state=\"\(state.rawValue)\"} \(slots[state.rawValue] ?? 0)\n" }
        family("codesand_queue_length", "gauge", "Requests waiting for a sandbox.")
        out += "codesand_queue_length \(queued)\n"
        family("codesand_slot_reset_seconds", "histogram", "Time to kill, tear down and prepare a slot again after a run.")
        histogram("codesand_slot_reset_seconds", s.resets, into: &out)
        family("codesand_slot_failures_total", "counter", "Slot preparations that failed (retried with backoff).")
        out += "codesand_slot_failures_total \(slotFailures)\n"
        family("codesand_pool_unavailable", "gauge",
               "1 when every slot is broken: runs fail at once with -32603 (the cause is in status's pool_error).")
        out += "codesand_pool_unavailable \(poolUnavailable ? 1 : 0)\n"
        family("codesand_uptime_seconds", "gauge", "Seconds since the daemon started.")
        out += "codesand_uptime_seconds \(uptimeSeconds)\n"
        return out
    }

    private func histogram(_ name: String, _ h: Histogram, into out: inout String) {
        for (i, b) in Self.buckets.enumerated() { out += "\(name)_bucket{le=\"\(b)\"} \(h.counts[i])\n" }
        out += "\(name)_bucket{le=\"+Inf\"} \(h.count)\n\(name)_sum \(h.sum)\n\(name)_count \(h.count)\n"
    }

    private func escape(_ s: String) -> String {
        s.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"").replacingAll("\n", with: "\\n")
    }
}
