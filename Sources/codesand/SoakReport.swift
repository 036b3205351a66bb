import CodesandProtocol
import Foundation

// What `codesand soak` found: requests and replies per kind, how each kind's runs ended, benign
// latency per third of the run, the daemon's resources before and after, and what it left behind.

/// One kind of run the soak sends: a benign snippet, or an AbuseKind.
struct SoakKind: Sendable {
    var name: String
    var params: RunParams
    var abuse: AbuseKind?

    static func benign(_ language: String, _ code: String) -> SoakKind {
        SoakKind(name: language, params: RunParams(language: language, code: code, requester: "codesand-soak"))
    }

    /// What is wrong with how `result` ended, or nil. Benign runs must end ok printing "1".
    func problem(with result: RunResult) -> String? {
        if let abuse { return abuse.problem(with: result) }
        guard result.status == .ok, result.stdout == "1\n" else {
            return "ended \(result.ending), printed \(BenchReport.quoted(result.stdout)), stderr \(BenchReport.quoted(result.stderr))"
        }
        return nil
    }
}

/// One request: its kind (index), the third of the run it was sent in, and how it ended.
struct SoakSample: Sendable {
    enum Outcome: Sendable {
        case result(status: String, problem: String?)
        /// A JSON-RPC error reply (busy, internal error…): answered, but not a run.
        case rpcError(code: Int, message: String)
        /// No reply: the connection closed or the reply timed out.
        case lost(String)
    }
    var kind: Int
    var third: Int
    var ms: Double
    var outcome: Outcome
}

struct Percentiles: Codable, Sendable {
    var n: Int
    var p50Ms: Double
    var p99Ms: Double

    init?(_ latencies: [Double]) {
        guard !latencies.isEmpty else { return nil }
        let sorted = latencies.sorted()
        (n, p50Ms, p99Ms) = (sorted.count, percentile(sorted, 50), percentile(sorted, 99))
    }

    enum CodingKeys: String, CodingKey { case n, p50Ms = "p50_ms", p99Ms = "p99_ms" }
}

struct SoakKindReport: Codable, Sendable {
    var kind: String
    var abusive: Bool
    var sent = 0
    var replies = 0
    var lost = 0
    var byStatus: [String: Int] = [:]
    /// JSON-RPC error replies by code.
    var rpcErrors: [String: Int] = [:]
    /// Replies that are not a run ending as this kind must: wrong results and JSON-RPC errors.
    var wrong = 0
    var latency: Percentiles?

    enum CodingKeys: String, CodingKey {
        case kind, abusive, sent, replies, lost, wrong, latency
        case byStatus = "by_status", rpcErrors = "rpc_errors"
    }
}

struct SoakReport: Codable, Sendable, CommandReport {
    var durationS: Double
    var concurrency: Int
    var abusePercent: Int
    var machine: String
    var daemonPID: Int32
    var kinds: [SoakKindReport] = []
    /// Benign latency per third of the run (drift), by kind.
    var thirds: [[String: Percentiles]] = []
    /// The daemon before the soak, after each third, and at the end once idle.
    var start: DaemonSnapshot?
    var afterThirds: [DaemonSnapshot] = []
    var end: DaemonSnapshot?
    var strayProcesses: Int?
    var slotFailures: Int64?
    var runsTotalDelta: Int64?
    var failures: [String] = []
    var notes: [String] = []
    var ok = true

    enum CodingKeys: String, CodingKey {
        case durationS = "duration_s", concurrency, abusePercent = "abuse_percent", machine, daemonPID = "daemon_pid"
        case kinds, thirds, start, afterThirds = "after_thirds", end, strayProcesses = "stray_processes"
        case slotFailures = "slot_failures", runsTotalDelta = "runs_total_delta", failures, notes, ok
    }

    /// Counts the samples per kind and per third; the first few problems become failures.
    mutating func add(_ samples: [SoakSample], kinds runKinds: [SoakKind]) {
        var reports = runKinds.map { SoakKindReport(kind: $0.name, abusive: $0.abuse != nil) }
        var latencies = [[Double]](repeating: [], count: runKinds.count)
        var byThird = [[Int: [Double]]](repeating: [:], count: 3)
        var problems: [String] = []
        for s in samples {
            reports[s.kind].sent += 1
            switch s.outcome {
            case .result(let status, let problem):
                reports[s.kind].replies += 1
                reports[s.kind].byStatus[status, default: 0] += 1
                latencies[s.kind].append(s.ms)
                if let problem {
                    reports[s.kind].wrong += 1
                    problems.append("\(runKinds[s.kind].name): \(problem)")
                } else if runKinds[s.kind].abuse == nil {
                    byThird[s.third][s.kind, default: []].append(s.ms)
                }
            case .rpcError(let code, let message):
                reports[s.kind].replies += 1
                reports[s.kind].rpcErrors["\(code)", default: 0] += 1
                reports[s.kind].wrong += 1
                problems.append("\(runKinds[s.kind].name): error \(code): \(message)")
            case .lost(let why):
                reports[s.kind].lost += 1
                problems.append("\(runKinds[s.kind].name): no reply: \(why)")
            }
        }
        for i in reports.indices { reports[i].latency = Percentiles(latencies[i]) }
        kinds.append(contentsOf: reports)
        thirds = byThird.map { third in
            Dictionary(uniqueKeysWithValues: third.compactMap { kind, ms in Percentiles(ms).map { (runKinds[kind].name, $0) } })
        }
        let sent = reports.reduce(0) { $0 + $1.sent }, replies = reports.reduce(0) { $0 + $1.replies }
        if sent != replies { failures.append("\(sent - replies) of \(sent) requests got no reply") }
        failures += problems.prefix(10)
        if problems.count > 10 { failures.append("… and \(problems.count - 10) more wrong replies") }
    }

    /// What the daemon kept or left after the load: each is a failure (a leak), judged once it is idle.
    /// `slots`: the pool's sandbox slots (status pool_size), each of which may hold a network and a
    /// base mount namespace and its cgroup counters open (one more slot probes languages).
    mutating func checkResources(rssSlackKiB: Int, slots: Int) {
        guard let start, let end else {
            failures.append("the daemon's /proc entries could not be read at the end")
            return
        }
        if end.fds > start.fds {
            let grew = end.fdKinds.filter { $0.value > start.fdKinds[$0.key, default: 0] }
                .map { "\($0.key) \(start.fdKinds[$0.key, default: 0]) → \($0.value)" }.sorted()
            failures.append("the daemon's open fds grew from \(start.fds) to \(end.fds) (\(grew.joined(separator: ", ")))")
        }
        // Two namespaces per slot, and one more base while a slot's is being replaced.
        if end.namespaceFds > 2 * (slots + 1) + 1 {
            failures.append("the daemon holds \(end.namespaceFds) namespace fds for \(slots) slots")
        }
        // Per slot at most six counters (cgroup v2: current, peak, events, cpu.stat, cgroup.events,
        // reclaim) and the cgroup.procs files its inits join (five controllers on v1), held open.
        if end.cgroupFileFds > 11 * (slots + 1) {
            failures.append("the daemon holds \(end.cgroupFileFds) cgroup file fds for \(slots) slots")
        }
        let baseline = afterThirds.first ?? start
        if end.rssKiB - baseline.rssKiB > rssSlackKiB {
            failures.append("the daemon's resident memory grew from \(baseline.rssKiB / 1024) MiB after the first third to "
                + "\(end.rssKiB / 1024) MiB at the end (more than \(rssSlackKiB / 1024) MiB)")
        }
        let zombies = Set(end.zombies).subtracting(start.zombies)
        if !zombies.isEmpty { failures.append("zombie children of the daemon: pids \(zombies.sorted())") }
        if end.mounts != start.mounts { failures.append("the host's mounts: \(start.mounts) before, \(end.mounts) after") }
        if end.cgroupDirs != start.cgroupDirs {
            failures.append("directories under the slots' cgroups: \(start.cgroupDirs) before, \(end.cgroupDirs) after")
        }
        if !start.markedProcesses.isEmpty { notes.append("before the soak, processes marked \(AbuseKind.daemonMarker) ran already") }
        let escaped = Set(end.markedProcesses).subtracting(start.markedProcesses)
        if !escaped.isEmpty { failures.append("background daemons started by runs survive on the host: pids \(escaped.sorted())") }
        if let stray = strayProcesses, stray > 0 {
            failures.append("\(stray) processes left in ready slots' cgroups (status stray_processes)")
        } else if strayProcesses == nil {
            notes.append("the daemon does not report stray_processes: processes left in its slots were not checked")
        }
        if let slotFailures, slotFailures > 0 { failures.append("\(slotFailures) slot preparations failed during the soak") }
        let results = kinds.reduce(0) { $0 + $1.byStatus.values.reduce(0, +) }
        if let runsTotalDelta, runsTotalDelta != Int64(results) {
            notes.append("the daemon counted \(runsTotalDelta) runs, the soak received \(results) results (another client?)")
        }
    }

    /// The report for people.
    var textLines: [String] {
        var lines = ["soak: \(BenchReport.fixed(durationS, 0)) s at concurrency \(concurrency), \(abusePercent)% abusive; "
                        + "daemon pid \(daemonPID); \(machine)", ""]
        var rows = [["kind", "sent", "replies", "lost", "wrong", "p50ms", "p99ms", "statuses"]]
        for k in kinds {
            let statuses = k.byStatus.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                + k.rpcErrors.sorted { $0.key < $1.key }.map { "error \($0.key) ×\($0.value)" }
            rows.append([k.kind, "\(k.sent)", "\(k.replies)", "\(k.lost)", "\(k.wrong)",
                         k.latency.map { BenchReport.fixed($0.p50Ms) } ?? "-", k.latency.map { BenchReport.fixed($0.p99Ms) } ?? "-",
                         statuses.joined(separator: ", ")])
        }
        rows.append(["total", "\(kinds.reduce(0) { $0 + $1.sent })", "\(kinds.reduce(0) { $0 + $1.replies })",
                     "\(kinds.reduce(0) { $0 + $1.lost })", "\(kinds.reduce(0) { $0 + $1.wrong })", "", "", ""])
        lines += alignedRows(rows, left: [0, 7])
        let benign = kinds.filter { !$0.abusive }.map(\.kind)
        var drift = [["third"] + benign.flatMap { ["\($0) n", "p50ms", "p99ms"] }]
        for (i, third) in thirds.enumerated() {
            drift.append(["\(i + 1)"] + benign.flatMap { name in
                third[name].map { ["\($0.n)", BenchReport.fixed($0.p50Ms), BenchReport.fixed($0.p99Ms)] } ?? ["0", "-", "-"]
            })
        }
        lines += ["", "benign latency by third of the run:"] + alignedRows(drift, left: [0])
        if let start, let end {
            let mid = afterThirds.first
            var daemon = [["daemon", "start", "after 1st third", "end"]]
            func row(_ name: String, _ value: (DaemonSnapshot) -> String) { daemon.append([name, value(start), mid.map(value) ?? "-", value(end)]) }
            row("rss MiB") { BenchReport.fixed(Double($0.rssKiB) / 1024) }
            row("fds") { "\($0.fds)" }
            row("namespace fds") { "\($0.namespaceFds)" }
            row("cgroup file fds") { "\($0.cgroupFileFds)" }
            row("threads") { "\($0.threads)" }
            row("zombie children") { "\($0.zombies.count)" }
            row("host mounts") { "\($0.mounts)" }
            row("cgroup dirs") { "\($0.cgroupDirs)" }
            row("escaped daemons") { "\($0.markedProcesses.count)" }
            lines += [""] + alignedRows(daemon, left: [0])
        }
        lines.append("stray processes in slot cgroups at the end: \(strayProcesses.map(String.init) ?? "unknown"); "
            + "slot failures during the soak: \(slotFailures.map(String.init) ?? "unknown"); "
            + "daemon runs_total +\(runsTotalDelta.map(String.init) ?? "?")")
        lines += notes.map { "note: \($0)" }
        lines += failures.map { "FAIL: \($0)" }
        lines.append(ok ? "result: ok" : "result: FAILED")
        return lines
    }
}
