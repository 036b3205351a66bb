import ArgumentParser
import CodesandClient
import CodesandProtocol
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure runs through the daemon against the same program run bare on the host.",
        discussion: """
            For each concurrency level: warm-up runs (not measured), then COUNT runs per mode in \
            rounds that alternate bare and daemon phases, so machine noise hits both. Bare runs spawn \
            the interpreter directly on a temp file holding the code: no shell, no sandbox. Every \
            benign daemon reply must print what the bare program printed (so the code should be \
            deterministic). runs/s counts good benign runs only. Exit status 1 when a reply was \
            wrong, an RPC error or busy, or the daemon reports stray processes; 2 when the daemon \
            refused the setup; 3 when it cannot be reached.
            """)

    /// Each level's COUNT runs per mode are split into this many bare/daemon round pairs.
    static let rounds = 4
    /// How long a reply may take: the longest wait for a sandbox plus the longest wall limit, and some.
    static let replyTimeout = Duration.seconds(120)

    @OptionGroup var global: GlobalOptions

    @Option(name: [.short, .long], help: "The language, by name or alias (see `codesand languages`).")
    var language = "python3"

    @Option(help: "The snippet to run; it should print the same thing every time.")
    var code = "print(1)"

    @Option(name: [.customShort("n"), .long], help: "Measured runs per mode and concurrency level.")
    var count = 200

    @Option(name: [.customShort("c"), .long], help: ArgumentHelp(
        "Concurrent workers; a comma list (1,2,4,8) runs one level each.", valueName: "c[,c…]"))
    var concurrency = ConcurrencyLevels(values: [1])

    @Option(help: ArgumentHelp("Unmeasured runs per mode before each level.", valueName: "n"))
    var warmup = 10

    @Option(help: ArgumentHelp("""
        Percent of daemon runs replaced by abusive snippets (fork bomb, sleep, memory bomb, output \
        flood), reported apart from the latencies.
        """, valueName: "percent"))
    var abuse = 0

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(help: "Ask the daemon to run the plain way even where an interpreter waits pre-started (compare the two).")
    var plain = false

    @Flag(name: .customLong("no-bare"), help: "Skip the bare runs; the daemon's first reply is the expected output.")
    var noBare = false

    @Option(name: .customLong("pause-ms"), help: ArgumentHelp(
        "Each worker waits this long after each of its runs, bare and daemon alike (as between chat messages).",
        valueName: "ms"))
    var pauseMs = 0

    @Flag(help: ArgumentHelp("""
        Sustained throughput: each daemon phase starts with the pool at rest and is timed until the \
        pool is at rest again (its slots torn down and prepared anew), so slots prepared before the \
        phase do not count as free work.
        """))
    var sustained = false

    @Option(help: ArgumentHelp("The bare argv, split on spaces; {file} is the temp file with the code.",
                               valueName: "command"))
    var bareCommand: String?

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
        guard (0...60_000).contains(pauseMs) else { throw ValidationError("--pause-ms is 0 to 60000") }
        guard (0...100).contains(abuse) else { throw ValidationError("--abuse is a percentage, 0 to 100") }
    }

    func run() async throws {
        var report = BenchReport(
            nproc: sysconf(Int32(_SC_NPROCESSORS_ONLN)), kernel: kernelDescription(), language: language,
            code: code, count: count, warmup: warmup, rounds: min(Self.rounds, count), abusePercent: abuse)
        report.pauseMs = pauseMs
        report.sustained = sustained
        let control = try await connect()
        let name = try await canonicalLanguage(control)
        let bare = noBare ? nil : BareRunner.make(language: name, code: code, override: bareCommand, notes: &report.notes)
        report.bareCommand = bare?.description
        let benign = RunParams(language: name, code: code, requester: "codesand-bench", prestart: plain ? false : nil)
        let before = await Self.status(control)

        // What every benign run must print: the bare program's output, else the daemon's first reply.
        let expected: Expected
        if let bare {
            switch bare.run() {
            case .success(let exit): expected = Expected(stdout: exit.stdout, exitedZero: exit.exitedZero)
            case .failure(let error):
                printError("codesand: the bare command \(bare.description.joined(separator: " ")) failed: \(error.message)")
                throw ExitCode(2)
            }
        } else {
            do {
                let result = try await control.run(benign, timeout: Self.replyTimeout)
                expected = Expected(stdout: result.stdout, exitedZero: result.status == .ok)
                report.daemonRuns += 1
            } catch {
                printError("codesand: the reference run failed: \(error)")
                throw ExitCode(2)
            }
        }

        let settle = PhaseSettle(sustained: sustained) { await Self.status(control) }
        for level in concurrency.values {
            var acc = LevelAccumulator(concurrency: level)
            var clients: [CodesandClient] = []
            for _ in 0..<level { clients.append(try await connect()) }
            if warmup > 0 {
                if let bare {
                    let (samples, elapsed) = await bare.phase(runs: warmup, concurrency: level, expected: expected, pauseMs: pauseMs)
                    acc.add(samples, elapsedS: elapsed, daemon: false, measured: false)
                }
                let (samples, elapsed) = await daemonPhase(clients, 0..<warmup, abuse: 0, benign: benign,
                                                           expected: expected)
                acc.add(samples, elapsedS: elapsed, daemon: true, measured: false)
            }
            var done = 0
            for round in 0..<report.rounds {
                let size = count / report.rounds + (round < count % report.rounds ? 1 : 0)
                // The machine's CPU of each phase is read once what it started has settled (the
                // daemon tears down and prepares the last runs' slots after their replies), the
                // same wait after either mode; with --abuse it is not a benign run's and is left out.
                let countCPU = abuse == 0
                if let bare {
                    let cpu = machineBusySeconds()
                    let (samples, elapsed) = await bare.phase(runs: size, concurrency: level, expected: expected, pauseMs: pauseMs)
                    _ = await settle.afterPhase(daemon: false)
                    acc.add(samples, elapsedS: elapsed, cpuS: countCPU ? machineBusySince(cpu) : nil, daemon: false, measured: true)
                }
                // Run indices go on across rounds so abusive runs are spread over the whole level.
                if sustained { _ = await settle.afterPhase(daemon: true) }
                let cpu = machineBusySeconds()
                let (samples, phaseS) = await daemonPhase(clients, done..<done + size, abuse: abuse,
                                                          benign: benign, expected: expected)
                // Sustained: the phase lasts until the pool is at rest again.
                let restS = await settle.afterPhase(daemon: true)
                let elapsed = sustained ? phaseS + restS : phaseS
                acc.restWaitS += restS
                acc.add(samples, elapsedS: elapsed, cpuS: countCPU ? machineBusySince(cpu) : nil, daemon: true, measured: true)
                done += size
            }
            for client in clients { await client.close() }
            report.levels.append(acc.report)
            report.daemonRuns += acc.results
            report.failures += acc.problems
        }

        if settle.cappedWaits > 0 {
            report.notes.append("\(settle.cappedWaits) waits for the pool at rest or the machine idle ended at their "
                + "\(Int(PhaseSettle.capS)) s cap (a busy machine): those phases' figures are unreliable")
        }
        let after = await Self.status(control)
        await control.close()
        check(before: before?.objectValue, after: after, report: &report)
        try report.conclude(json: json)
    }

    /// C workers, each on its own connection, take run indices from a shared counter until none are left.
    private func daemonPhase(_ clients: [CodesandClient], _ indices: Range<Int>, abuse: Int, benign: RunParams,
                             expected: Expected) async -> (samples: [Sample], elapsedS: Double) {
        let next = Counter(start: indices.lowerBound)
        let pauseMs = self.pauseMs
        let start = monotonicNanos()
        let samples = await withTaskGroup(of: [Sample].self) { group in
            for client in clients {
                // On the client's own loop, as the bare runs are on threads of their own: the
                // comparison is of the daemon, not of hops between the client's threads.
                group.addTask(executorPreference: client.taskExecutor) {
                    var mine: [Sample] = []
                    while true {
                        let index = next.take()
                        guard index < indices.upperBound else { return mine }
                        let kind = AbuseKind.forRun(index, percent: abuse, kinds: AbuseKind.benchMix)
                        mine.append(await Self.daemonRun(client, kind?.params ?? benign, kind: kind, expected: expected))
                        if pauseMs > 0 { try? await Task.sleep(for: .milliseconds(pauseMs)) }
                    }
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        return (samples, secondsSince(start))
    }

    /// One request, timed from send to parsed reply, and checked.
    private static func daemonRun(_ client: CodesandClient, _ params: RunParams, kind: AbuseKind?,
                                  expected: Expected) async -> Sample {
        let start = monotonicNanos()
        let what = kind.map { "abuse \($0.name)" } ?? "run"
        let result: RunResult
        do {
            result = try await client.run(params, timeout: replyTimeout)
        } catch {
            if case .rpc(let rpc) = error, rpc.code == RPCErrorCode.busy.rawValue {
                return Sample(ms: millisecondsSince(start), outcome: .busy)
            }
            return Sample(ms: millisecondsSince(start), outcome: .failed("\(what): \(error)"))
        }
        let ms = millisecondsSince(start)
        if let kind {
            let problem = kind.problem(with: result).map { "\(what) \($0)" }
            return Sample(ms: ms, outcome: .abusive(kind: kind.name, status: result.status.rawValue, problem: problem),
                          gotResult: true)
        }
        if result.stdout != expected.stdout || (expected.exitedZero && result.status != .ok) {
            return Sample(ms: ms, outcome: .failed("\(what) printed \(BenchReport.quoted(result.stdout)), expected "
                + "\(BenchReport.quoted(expected.stdout)); ended \(result.ending) after \(result.wallMs) ms"
                + (expected.exitedZero ? " (bare exited 0)" : "") + ", stderr \(BenchReport.quoted(result.stderr))"),
                          gotResult: true)
        }
        return Sample(ms: ms, outcome: .good, gotResult: true)
    }

    /// Compares the daemon's counters after the bench with before it. Other clients may use the
    /// daemon too, so a runs_total mismatch is a note, not a failure; stray processes are a failure.
    private func check(before: [String: JSONValue]?, after: JSONValue?, report: inout BenchReport) {
        report.status = after
        guard let after = after?.objectValue else {
            report.failures.append("the daemon's status could not be read after the bench")
            return
        }
        if case .int(let b)? = before?["runs_total"], case .int(let a)? = after["runs_total"] {
            report.runsTotalDelta = a - b
            if a - b != Int64(report.daemonRuns) {
                report.notes.append("runs_total went up by \(a - b) but this bench got \(report.daemonRuns) results "
                    + "(another client, or a counter off)")
            }
        }
        if case .int(let b)? = before?["slot_failures"], case .int(let a)? = after["slot_failures"], a > b {
            report.notes.append("\(a - b) sandbox prepares failed during the bench (slot_failures)")
        }
        if let stray = after["stray_processes"], stray != .int(0), stray != .double(0), stray != .array([]) {
            report.failures.append("the daemon reports stray_processes \(BenchReport.compact(stray))")
        }
    }

    private func connect() async throws -> CodesandClient {
        do {
            return try await CodesandClient.connect(socketPath: global.socketPath)
        } catch {
            printError("codesand: \(error)")
            throw ExitCode(3)
        }
    }

    /// The daemon's name for `language` (an alias such as `py` picks the bare interpreter of `python3`).
    private func canonicalLanguage(_ client: CodesandClient) async throws -> String {
        let languages: [LanguageInfo]
        do {
            languages = try await client.languages(timeout: Self.replyTimeout)
        } catch {
            printError("codesand: languages: \(error)")
            throw ExitCode(2)
        }
        let names = Set(languages.map(\.name))
        if abuse > 0, !names.isSuperset(of: ["bash", "python3"]) {
            printError("codesand: --abuse needs the daemon's bash and python3")
            throw ExitCode(2)
        }
        guard let info = languages.first(where: { $0.name == language || $0.aliases.contains(language) }) else {
            printError("codesand: the daemon has no language \(language) (it has \(names.sorted().joined(separator: ", ")))")
            throw ExitCode(2)
        }
        return info.name
    }

    /// The status result as raw JSON, so fields this CLI does not know (e.g. stray_processes) show too.
    private static func status(_ client: CodesandClient) async -> JSONValue? {
        guard let data = try? await client.call(method: RPCMethod.status, timeout: replyTimeout) else { return nil }
        return try? JSONDecoder().decode(JSONValue.self, from: data)
    }
}

/// What a benign run must print, and whether it must end `ok`.
struct Expected: Sendable {
    var stdout: String
    var exitedZero: Bool
}

/// `-c 1,2,4,8`: one concurrency level per value.
struct ConcurrencyLevels: ExpressibleByArgument, Sendable {
    var values: [Int]

    init(values: [Int]) { self.values = values }

    init?(argument: String) {
        let values = argument.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 }) else { return nil }
        self.values = values.compactMap { $0 }
    }

    var defaultValueDescription: String { values.map(String.init).joined(separator: ",") }
}

/// A shared "next run index", safe from any thread or task.
final class Counter: Sendable {
    private let value: Atomic<Int>
    init(start: Int) { value = Atomic(start) }
    /// The value before adding `step`.
    func take(_ step: Int = 1) -> Int { value.wrappingAdd(step, ordering: .relaxed).oldValue }
}
