import CodesandProtocol
import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// The numbers `codesand bench` reports, and how it prints them (a table, or JSON with --json).

/// The value at percentile `p` (0–100) of ascending `sorted`, by nearest rank: always a latency that
/// was really measured, which matters for p99 of a few hundred samples.
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
}

/// One request's measurement: a bare spawn-to-exit, or a daemon send-to-reply.
struct Sample: Sendable {
    var ms: Double
    var outcome: Outcome
    /// The daemon replied with a run result, so its runs_total went up by one.
    var gotResult = false

    enum Outcome: Sendable {
        case good
        case failed(String)
        case busy
        /// An abusive run: its kind, how it ended, and what is wrong about that if anything.
        case abusive(kind: String, status: String, problem: String?)
    }
}

/// Gathers one concurrency level's samples, phase by phase, into its report.
struct LevelAccumulator {
    let concurrency: Int
    private var bareMs: [Double] = [], daemonMs: [Double] = []
    private var bareElapsed = 0.0, daemonElapsed = 0.0
    /// The machine's busy CPU seconds during each mode's measured phases, and the runs in them.
    private var bareCpuS = 0.0, daemonCpuS = 0.0, bareCpuRuns = 0, daemonCpuRuns = 0
    /// Seconds waited after the daemon's phases for its pool at rest (in its time only if --sustained).
    var restWaitS = 0.0
    private var abusive: [String: [(ms: Double, status: String)]] = [:]
    private var daemonFailures = 0, bareFailures = 0, busy = 0
    /// Runs the daemon answered with a result.
    private(set) var results = 0
    /// The first few failure messages, and how many more there were.
    private var messages: [String] = []
    private var unshown = 0

    init(concurrency: Int) { self.concurrency = concurrency }

    /// Warm-up phases are not `measured`: their failures count, their latencies do not.
    /// `cpuS` is the machine's busy CPU time during the phase (nil: unknown).
    mutating func add(_ samples: [Sample], elapsedS: Double, cpuS: Double? = nil, daemon: Bool, measured: Bool) {
        if measured, daemon { daemonElapsed += elapsedS } else if measured { bareElapsed += elapsedS }
        if measured, let cpuS {
            if daemon { daemonCpuS += cpuS; daemonCpuRuns += samples.count } else { bareCpuS += cpuS; bareCpuRuns += samples.count }
        }
        for sample in samples {
            if sample.gotResult { results += 1 }
            switch sample.outcome {
            case .good where measured: if daemon { daemonMs.append(sample.ms) } else { bareMs.append(sample.ms) }
            case .good: break
            case .busy: busy += 1
            case .failed(let message):
                if daemon { daemonFailures += 1 } else { bareFailures += 1 }
                note(message)
            case .abusive(let kind, let status, let problem):
                abusive[kind, default: []].append((sample.ms, status))
                if let problem { daemonFailures += 1; note(problem) }
            }
        }
    }

    private mutating func note(_ message: String) {
        if messages.count < 5 { messages.append("c \(concurrency): \(message)") } else { unshown += 1 }
    }

    /// What makes the bench fail, for the report's failure list.
    var problems: [String] {
        var list = messages
        if unshown > 0 { list.append("c \(concurrency): … and \(unshown) more failures") }
        if busy > 0 { list.append("c \(concurrency): \(busy) busy replies (-32002)") }
        return list
    }

    var report: LevelReport {
        let bare = LatencyStats(latenciesMs: bareMs, elapsedS: bareElapsed, cpuS: bareCpuS, cpuRuns: bareCpuRuns)
        let daemon = LatencyStats(latenciesMs: daemonMs, elapsedS: daemonElapsed, cpuS: daemonCpuS, cpuRuns: daemonCpuRuns)
        let abuse = abusive.sorted { $0.key < $1.key }.map { kind, runs in
            AbuseStats(kind: kind, n: runs.count,
                       byStatus: runs.reduce(into: [:]) { $0[$1.status, default: 0] += 1 },
                       p50Ms: percentile(runs.map(\.ms).sorted(), 50))
        }
        return LevelReport(concurrency: concurrency, bare: bare, daemon: daemon,
                           ratio: daemon.flatMap { d in bare.map { Ratios(daemon: d, bare: $0) } },
                           daemonFailures: daemonFailures, bareFailures: bareFailures, busy: busy, abuse: abuse,
                           restWaitS: restWaitS)
    }
}

/// Latency percentiles and throughput of one mode (bare or daemon) at one concurrency level.
struct LatencyStats: Codable, Sendable {
    var n: Int
    var p50Ms: Double
    var p90Ms: Double
    var p99Ms: Double
    var meanMs: Double
    /// Wall time of the mode's phases added up (rounds of the other mode in between not counted).
    var elapsedS: Double
    /// Good runs per second of `elapsedS`. For the daemon with --abuse: benign runs only.
    var runsPerS: Double
    /// The whole machine's busy CPU time (user, system, interrupts; /proc/stat) during the mode's
    /// phases, per run: the program and everything it took to run it, this client included.
    var machineCpuMsPerRun: Double?

    init?(latenciesMs: [Double], elapsedS: Double, cpuS: Double = 0, cpuRuns: Int = 0) {
        guard !latenciesMs.isEmpty else { return nil }
        let sorted = latenciesMs.sorted()
        n = sorted.count
        p50Ms = percentile(sorted, 50)
        p90Ms = percentile(sorted, 90)
        p99Ms = percentile(sorted, 99)
        meanMs = sorted.reduce(0, +) / Double(sorted.count)
        self.elapsedS = elapsedS
        runsPerS = elapsedS > 0 ? Double(sorted.count) / elapsedS : 0
        machineCpuMsPerRun = cpuRuns > 0 ? cpuS * 1000 / Double(cpuRuns) : nil
    }

    enum CodingKeys: String, CodingKey {
        case n, p50Ms = "p50_ms", p90Ms = "p90_ms", p99Ms = "p99_ms", meanMs = "mean_ms"
        case elapsedS = "elapsed_s", runsPerS = "runs_per_s", machineCpuMsPerRun = "machine_cpu_ms_per_run"
    }
}

/// daemon / bare: above 1 for latency means the sandbox costs time; below 1 for throughput means
/// fewer runs per second through the daemon.
struct Ratios: Codable, Sendable {
    var p50: Double, p90: Double, p99: Double, throughput: Double
    /// Machine CPU per daemon run minus per bare run: what running through codesand adds (the
    /// sandbox's construction and teardown, the daemon, the client's request), in ms.
    var addedCpuMsPerRun: Double?

    init(daemon: LatencyStats, bare: LatencyStats) {
        p50 = daemon.p50Ms / bare.p50Ms
        p90 = daemon.p90Ms / bare.p90Ms
        p99 = daemon.p99Ms / bare.p99Ms
        throughput = daemon.runsPerS / bare.runsPerS
        if let d = daemon.machineCpuMsPerRun, let b = bare.machineCpuMsPerRun { addedCpuMsPerRun = d - b }
    }

    enum CodingKeys: String, CodingKey {
        case p50, p90, p99, throughput, addedCpuMsPerRun = "added_cpu_ms_per_run"
    }
}

/// How the abusive runs of one kind ended; not part of the latency stats.
struct AbuseStats: Codable, Sendable {
    var kind: String
    var n: Int
    var byStatus: [String: Int]
    var p50Ms: Double?

    enum CodingKeys: String, CodingKey { case kind, n, byStatus = "by_status", p50Ms = "p50_ms" }
}

struct LevelReport: Codable, Sendable {
    var concurrency: Int
    var bare: LatencyStats?
    var daemon: LatencyStats?
    var ratio: Ratios?
    /// Daemon replies that were wrong or RPC errors (busy excluded), and bare runs that failed.
    var daemonFailures: Int
    var bareFailures: Int
    /// -32002 replies.
    var busy: Int
    var abuse: [AbuseStats]
    /// Seconds the bench waited after the daemon's phases until its pool was at rest.
    var restWaitS: Double

    enum CodingKeys: String, CodingKey {
        case concurrency, bare, daemon, ratio, busy, abuse, restWaitS = "rest_wait_s"
        case daemonFailures = "daemon_failures", bareFailures = "bare_failures"
    }
}

struct BenchReport: Codable, Sendable, CommandReport {
    var nproc: Int
    var kernel: String
    var language: String
    var code: String
    var count: Int
    var warmup: Int
    var rounds: Int
    var abusePercent: Int
    /// Each worker's pause after each run.
    var pauseMs = 0
    /// Daemon phases timed until the pool was at rest again (--sustained).
    var sustained = false
    /// The argv run bare, with {file} replaced; nil when the bare part was skipped.
    var bareCommand: [String]?
    var levels: [LevelReport] = []
    /// Every `run` request that got a result (warm-up and the reference run included).
    var daemonRuns = 0
    var runsTotalDelta: Int64?
    /// The daemon's `status` result after the bench, as received.
    var status: JSONValue?
    var failures: [String] = []
    var notes: [String] = []
    var ok = true

    enum CodingKeys: String, CodingKey {
        case nproc, kernel, language, code, count, warmup, rounds, levels, status, failures, notes, ok
        case abusePercent = "abuse_percent", bareCommand = "bare_command", daemonRuns = "daemon_runs"
        case runsTotalDelta = "runs_total_delta", pauseMs = "pause_ms", sustained
    }

    /// The report for people: machine, a table row per mode and level, abuse, daemon status, problems.
    var textLines: [String] {
        var bench = "bench: \(language) \(Self.quoted(code)), n \(count) per level in \(rounds) rounds, "
        bench += "warm-up \(warmup), abuse \(abusePercent)%"
        if pauseMs > 0 { bench += ", pause \(pauseMs) ms after each run" }
        if sustained { bench += ", sustained (daemon phases timed until its pool is at rest again)" }
        var lines = ["machine: \(nproc) CPUs, Linux \(kernel)", bench,
                     "bare: " + (bareCommand?.joined(separator: " ") ?? "skipped"), ""]
        var rows = [["c", "mode", "n", "p50ms", "p90ms", "p99ms", "runs/s", "cpu ms/run"]]
        var ratioLines: [Int: String] = [:]
        for level in levels {
            for (mode, stats) in [("bare", level.bare), ("daemon", level.daemon)] {
                guard let stats else { continue }
                rows.append(["\(level.concurrency)", mode, "\(stats.n)", Self.fixed(stats.p50Ms),
                             Self.fixed(stats.p90Ms), Self.fixed(stats.p99Ms), Self.fixed(stats.runsPerS),
                             stats.machineCpuMsPerRun.map { Self.fixed($0, 2) } ?? "-"])
            }
            if let r = level.ratio {
                ratioLines[rows.count] = "\(level.concurrency)  ratio   p50 daemon/bare \(Self.fixed(r.p50, 2))  "
                    + "p99 daemon/bare \(Self.fixed(r.p99, 2))  throughput daemon/bare \(Self.fixed(r.throughput, 2))"
                    + (r.addedCpuMsPerRun.map { "  cpu added \(Self.fixed($0, 2)) ms/run" } ?? "")
            }
        }
        for (index, line) in alignedRows(rows, left: [0, 1]).enumerated() {
            lines.append(line)
            if let ratio = ratioLines[index + 1] { lines.append(ratio) }
        }
        for level in levels {
            for a in level.abuse {
                let statuses = a.byStatus.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                lines.append("c \(level.concurrency) abuse \(a.kind): n \(a.n), \(statuses.joined(separator: ", ")), "
                    + "p50 \(a.p50Ms.map { Self.fixed($0) } ?? "-") ms")
            }
            if level.busy + level.daemonFailures + level.bareFailures > 0 {
                lines.append("c \(level.concurrency): \(level.daemonFailures) daemon failures, \(level.busy) busy, "
                    + "\(level.bareFailures) bare failures")
            }
        }
        lines.append("")
        lines.append(contentsOf: statusLines)
        lines += notes.map { "note: \($0)" }
        lines += failures.map { "FAIL: \($0)" }
        lines.append(ok ? "result: ok" : "result: FAILED")
        return lines
    }

    private var statusLines: [String] {
        guard let status = status?.objectValue else { return ["daemon status: unavailable"] }
        func show(_ key: String) -> String { status[key].map(Self.compact) ?? "-" }
        let line = "daemon: runs_total \(show("runs_total")) (+\(runsTotalDelta.map(String.init) ?? "?"), "
            + "this bench \(daemonRuns)), runs_by_status \(show("runs_by_status"))"
        var pool = "pool: size \(show("pool_size")), slots \(show("slots")), reset p50 \(show("reset_ms_p50")) ms, "
            + "p99 \(show("reset_ms_p99")) ms, slot_failures \(show("slot_failures"))"
        if status["stray_processes"] != nil { pool += ", stray_processes \(show("stray_processes"))" }
        return [line, pool]
    }

    static func fixed(_ x: Double, _ digits: Int = 1) -> String {
        x.isFinite ? String(format: "%.\(digits)f", x) : "-"
    }

    static func quoted(_ s: String, limit: Int = 60) -> String {
        let escaped = s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
        return "\"" + (escaped.count > limit ? escaped.prefix(limit) + "…" : escaped) + "\""
    }

    /// A JSON value on one line, keys sorted, for the status summary.
    static func compact(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return "\(b)"
        case .int(let i): return "\(i)"
        case .double(let d): return fixed(d)
        case .string(let s): return s
        case .array(let a): return "[" + a.map(compact).joined(separator: ", ") + "]"
        case .object(let o):
            return "{" + o.sorted { $0.key < $1.key }.map { "\($0.key) \(compact($0.value))" }.joined(separator: ", ") + "}"
        }
    }
}

/// A table's rows as lines, columns aligned: those in `left` (names) to the left, the others (numbers)
/// to the right.
func alignedRows(_ rows: [[String]], left: Set<Int>) -> [String] {
    let widths = (0..<(rows.map(\.count).max() ?? 0)).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
    return rows.map { row in
        let cells = row.enumerated().map { column, cell in
            left.contains(column) ? cell.padded(to: widths[column]) : cell.leftPadded(to: widths[column])
        }
        return String(cells.joined(separator: "  ").reversed().drop { $0 == " " }.reversed())
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

/// What `bench` and `soak` print at their end: JSON or text lines, then exit 1 if it failed.
protocol CommandReport: Encodable {
    var textLines: [String] { get }
    var failures: [String] { get }
    var ok: Bool { get set }
}

extension CommandReport {
    /// Sets `ok` from the failures, prints the report, and throws exit code 1 unless it is ok.
    mutating func conclude(json: Bool) throws {
        ok = failures.isEmpty
        if json {
            try printJSON(self)
        } else {
            textLines.forEach(printOut)
        }
        if !ok { throw ExitCode(1) }
    }
}

/// A report as pretty JSON on stdout (keys sorted; a NaN or infinite number as a string).
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    writeOut(1, try encoder.encode(value) + Data("\n".utf8))
}

/// The running kernel's release and machine, from uname(2).
func kernelDescription() -> String {
    var u = utsname()
    guard uname(&u) == 0 else { return "unknown" }
    func field<T>(_ value: inout T) -> String {
        withUnsafeBytes(of: &value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
    return field(&u.release) + " " + field(&u.machine)
}

/// A monotonic clock in nanoseconds, readable from any thread without an async context.
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func millisecondsSince(_ start: UInt64) -> Double { Double(monotonicNanos() - start) / 1e6 }
func secondsSince(_ start: UInt64) -> Double { Double(monotonicNanos() - start) / 1e9 }
