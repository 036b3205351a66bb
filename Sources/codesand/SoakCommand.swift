import ArgumentParser
import CodesandClient
import CodesandProtocol
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct SoakCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Load the daemon with benign and abusive runs for a while, then check that nothing was lost or left behind.",
        discussion: """
            C workers, each on its own connection, send runs back to back until the duration is up: \
            python3 print(1) and bash echo 1, and ABUSE% abusive ones in turn (fork bomb, memory bomb, \
            endless output, sleep past the timeout, setsid background daemon, big file in /tmp, CPU \
            spin). Every request must get a reply; every run must end as its kind must (benign: ok \
            printing 1; a memory bomb: oom; a sleep: timeout…). Once the daemon is idle again it must \
            have as many fds, mounts and cgroup directories as before, no zombie children, no more \
            resident memory than after the first third plus --rss-slack-mib, nothing left in its ready \
            slots' cgroups (status stray_processes), no escaped background daemon, and no slot that \
            failed to prepare. Runs on the daemon's host, as root (it reads /proc/PID and the slots' \
            cgroups). Exit status 1 on any loss, wrong ending or leak; 2 when the daemon refused the \
            setup; 3 when it cannot be reached.
            """)

    static let replyTimeout = Duration.seconds(120)
    /// How long the pool may take to be idle with every slot ready, before and after the load.
    static let settleTimeout = Duration.seconds(60)

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("How long to send runs: seconds, or with a unit (90s, 30m, 1h).", valueName: "time"))
    var duration = SoakDuration(seconds: 60)

    @Option(name: [.customShort("c"), .long], help: "Concurrent workers, each on its own connection.")
    var concurrency = 4

    @Option(help: ArgumentHelp("Percent of runs that are abusive, the kinds in turn.", valueName: "percent"))
    var abuse = 15

    @Option(name: .customLong("daemon-pid"), help: ArgumentHelp(
        "The daemon's pid on this host (default: the pid its status reports).", valueName: "pid"))
    var daemonPID: Int32?

    @Option(name: .customLong("rss-slack-mib"), help: ArgumentHelp(
        "How much the daemon's resident memory may grow from the end of the first third to the end.", valueName: "MiB"))
    var rssSlackMiB = 32

    @Flag(help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        guard duration.seconds >= 3 else { throw ValidationError("--duration must be at least 3 s (three thirds)") }
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard (0...100).contains(abuse) else { throw ValidationError("--abuse is a percentage, 0 to 100") }
        guard rssSlackMiB >= 0 else { throw ValidationError("--rss-slack-mib must not be negative") }
    }

    func run() async throws {
        let control = try await connect()
        let kinds = [SoakKind.benign("python3", "print(1)"), SoakKind.benign("bash", "echo 1")]
            + AbuseKind.soakMix.map { SoakKind(name: $0.name, params: $0.params, abuse: $0) }
        let initial = try await setUp(control)
        guard let pid = daemonPID ?? initial.pid else {
            printError("codesand: the daemon's status has no pid (an older daemon): pass --daemon-pid")
            throw ExitCode(2)
        }
        let probe = DaemonProbe(pid: pid, cgroupParents: initial.sandboxCgroups ?? [])
        var clients: [CodesandClient] = []
        for _ in 0..<concurrency { clients.append(try await connect()) }
        // One run of each kind per worker first, not counted: what the daemon sets up on first use
        // (a timer fd, thread stacks, a zygote) is not a leak.
        await withTaskGroup(of: Void.self) { group in
            for client in clients { group.addTask { for kind in kinds { _ = await Self.send(kind, on: client) } } }
        }
        // And requests that wait for a turn (their wait's timer is set up on its first use): more
        // at once than run at once. (A sleeping run lends its turn, so the above may queue none.)
        await withTaskGroup(of: Void.self) { group in
            for client in clients {
                for _ in 0..<3 { group.addTask { _ = await Self.send(kinds[0], on: client) } }
            }
        }
        guard let before = await Self.idle(control) else {
            printError("codesand: the daemon's pool is not idle with every slot ready after the warm-up (see `codesand status`)")
            throw ExitCode(1)
        }
        var report = SoakReport(durationS: duration.seconds, concurrency: concurrency, abusePercent: abuse,
                                machine: "\(sysconf(Int32(_SC_NPROCESSORS_ONLN))) CPUs, Linux \(kernelDescription())", daemonPID: pid)
        do {
            report.start = try probe.snapshot()
        } catch {
            printError("codesand: \(error)")
            throw ExitCode(2)
        }

        let (samples, afterThirds) = await load(clients, kinds: kinds, probe: probe)
        report.afterThirds = afterThirds
        report.add(samples, kinds: kinds)

        let after = await Self.idle(control)
        if after == nil { report.failures.append("the pool was not idle with every slot ready within \(Self.settleTimeout) after the load") }
        report.end = await settledSnapshot(probe, start: report.start!)
        report.strayProcesses = after?.strayProcesses
        report.slotFailures = after.map { $0.slotFailures - before.slotFailures }
        report.runsTotalDelta = after.map { $0.runsTotal - before.runsTotal }
        // Closed only now: the daemon holds the same connections at the start and at the end.
        for client in clients + [control] { await client.close() }
        report.checkResources(rssSlackKiB: rssSlackMiB * 1024, slots: initial.poolSize)
        try report.conclude(json: json)
    }

    /// Checks the daemon has what the soak sends, and waits until it is idle: the "before" status.
    private func setUp(_ control: CodesandClient) async throws -> StatusResult {
        let names: Set<String>
        do {
            names = Set(try await control.languages(timeout: Self.replyTimeout).map(\.name))
        } catch {
            printError("codesand: languages: \(error)")
            throw ExitCode(2)
        }
        guard names.isSuperset(of: ["bash", "python3"]) else {
            printError("codesand: soak needs the daemon's bash and python3 (it has \(names.sorted().joined(separator: ", ")))")
            throw ExitCode(2)
        }
        guard let status = await Self.idle(control) else {
            printError("codesand: the daemon's pool is not idle with every slot ready (see `codesand status`)")
            throw ExitCode(2)
        }
        return status
    }

    /// The workers' requests until the duration is up, and the daemon at the end of each third but the last.
    private func load(_ clients: [CodesandClient], kinds: [SoakKind], probe: DaemonProbe) async -> ([SoakSample], [DaemonSnapshot]) {
        let start = monotonicNanos()
        let thirdNs = UInt64(duration.seconds * 1e9 / 3)
        let next = Counter(start: 0)
        let abuse = self.abuse
        let sampler = Task {
            var snapshots: [DaemonSnapshot] = []
            for third in 1...2 {
                let due = start + UInt64(third) * thirdNs
                let now = monotonicNanos()
                if due > now { try? await Task.sleep(for: .nanoseconds(due - now)) }
                if let s = try? probe.snapshot() { snapshots.append(s) }
            }
            return snapshots
        }
        let samples = await withTaskGroup(of: [SoakSample].self) { group in
            for client in clients {
                group.addTask {
                    var mine: [SoakSample] = []
                    while true {
                        let elapsed = monotonicNanos() - start
                        guard elapsed < 3 * thirdNs else { return mine }
                        let index = next.take()
                        let kind = AbuseKind.forRun(index, percent: abuse, kinds: AbuseKind.soakMix)
                            .map { 2 + AbuseKind.soakMix.firstIndex(of: $0)! } ?? index % 2
                        let sent = monotonicNanos()
                        let outcome = await Self.send(kinds[kind], on: client)
                        mine.append(SoakSample(kind: kind, third: Int(min(2, elapsed / thirdNs)), ms: millisecondsSince(sent), outcome: outcome))
                    }
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        return (samples, await sampler.value)
    }

    private static func send(_ kind: SoakKind, on client: CodesandClient) async -> SoakSample.Outcome {
        do {
            let result = try await client.run(kind.params, timeout: replyTimeout)
            return .result(status: result.status.rawValue, problem: kind.problem(with: result))
        } catch .rpc(let rpc) {
            return .rpcError(code: rpc.code, message: rpc.message)
        } catch {
            return .lost("\(error)")
        }
    }

    /// The status once nothing runs or waits and every slot is ready, or nil after settleTimeout.
    private static func idle(_ client: CodesandClient) async -> StatusResult? {
        let end = ContinuousClock.now + settleTimeout
        while ContinuousClock.now < end {
            if let s = try? await client.status(timeout: replyTimeout), s.running == 0, s.queued == 0,
               s.slots[SlotStateName.ready] == s.poolSize {
                return s
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    /// The daemon once idle. A child just killed with its sandbox may need a moment to be reaped, and
    /// a sandbox's pipes a moment to be closed: up to 5 s for both.
    /// Waits up to 15 s for what the load still holds to go (a connection closing, a zygote starting
    /// again after its back-off); a leak stays.
    private func settledSnapshot(_ probe: DaemonProbe, start: DaemonSnapshot) async -> DaemonSnapshot? {
        var last: DaemonSnapshot?
        for _ in 0..<150 {
            last = try? probe.snapshot()
            if let last, Set(last.zombies).isSubset(of: start.zombies), last.fds <= start.fds { return last }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return last
    }

    private func connect() async throws -> CodesandClient {
        do {
            return try await CodesandClient.connect(socketPath: global.socketPath)
        } catch {
            printError("codesand: \(error)")
            throw ExitCode(3)
        }
    }
}

/// The name of the ready state in `status`'s `slots`.
enum SlotStateName { static let ready = "ready" }

/// `--duration 90`, `90s`, `30m`, `1h`.
struct SoakDuration: ExpressibleByArgument, Sendable {
    var seconds: Double

    init(seconds: Double) { self.seconds = seconds }

    init?(argument: String) {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
        let unit = argument.last.flatMap { units[$0] }
        guard let value = Double(unit == nil ? argument : String(argument.dropLast())), value > 0 else { return nil }
        seconds = value * (unit ?? 1)
    }

    var defaultValueDescription: String { "\(Int(seconds))s" }
}
