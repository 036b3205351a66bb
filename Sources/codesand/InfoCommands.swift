import ArgumentParser
import CodesandClient
import CodesandProtocol
import Foundation

struct LanguagesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "languages", abstract: "List the languages the daemon can run.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print the result JSON exactly as received, on one line.")
    var json = false

    func run() async throws {
        if json {
            let raw = try await global.withClient { client throws(CodesandClientError) in
                try await client.call(method: RPCMethod.languages)
            }
            writeOut(1, raw + Data("\n".utf8))
            return
        }
        let languages = try await global.withClient { client throws(CodesandClientError) in
            try await client.languages()
        }
        let rows = [["NAME", "ALIASES", "VERSION"]]
            + languages.map { [$0.name, $0.aliases.joined(separator: ","), $0.version] }
        let widths = (0..<2).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            printOut(row[0].padded(to: widths[0]) + "  " + row[1].padded(to: widths[1]) + "  " + row[2])
        }
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show the daemon's version, backend, pool and counters.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print the result JSON exactly as received, on one line.")
    var json = false

    func run() async throws {
        if json {
            let raw = try await global.withClient { client throws(CodesandClientError) in
                try await client.call(method: RPCMethod.status)
            }
            writeOut(1, raw + Data("\n".utf8))
            return
        }
        let s = try await global.withClient { client throws(CodesandClientError) in
            try await client.status()
        }
        let byStatus = s.runsByStatus.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        var lines: [(String, String)] = [
            ("version", s.pid.map { "\(s.version) (pid \($0))" } ?? s.version),
            ("backend", "\(s.backend) (cgroup \(s.cgroup))"),
            ("uptime", Self.duration(seconds: s.uptimeS)),
            ("runs", byStatus.isEmpty ? "\(s.runsTotal)" : "\(s.runsTotal) (\(byStatus.joined(separator: ", ")))"),
            ("running", "\(s.running)"),
            ("queued", "\(s.queued)"),
            ("pool size", "\(s.poolSize)" + (s.maxRunning.map { $0 < s.poolSize ? " (\($0) run at once)" : "" } ?? "")),
            ("slots", s.slots.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")),
            ("resets", "p50 \((s.resetMsP50 * 10).rounded() / 10) ms, p99 \((s.resetMsP99 * 10).rounded() / 10) ms, "
                + "\(s.slotFailures) failed"),
            ("zygotes", (s.zygotes ?? []).isEmpty ? "none" : s.zygotes!.joined(separator: ", ")),
        ]
        for (member, counts) in (s.members ?? [:]).sorted(by: { $0.key < $1.key }) {
            let states = counts.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            lines.append(("member", "\(member): " + (states.isEmpty ? "no slots" : states.joined(separator: ", "))))
        }
        if let stray = s.strayProcesses { lines.append(("stray", "\(stray) processes left in ready slots' cgroups")) }
        if let error = s.poolError { lines.append(("pool error", error)) }
        for b in s.brokenSlots ?? [] {
            lines.append(("broken", "slot \(b.slot), \(b.failures) failures in a row, next try in \(b.retryInMs) ms: \(b.error)"))
        }
        for (key, value) in lines {
            printOut((key + ":").padded(to: 11) + value)
        }
    }

    static func duration(seconds: Int64) -> String {
        let (d, h, m, s) = (seconds / 86400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60)
        if d > 0 { return "\(d)d \(h)h \(m)m" }
        if h > 0 { return "\(h)h \(m)m \(s)s" }
        if m > 0 { return "\(m)m \(s)s" }
        return "\(s)s"
    }
}

extension String {
    func padded(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

struct MetricsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics", abstract: "Print the daemon's counters in the Prometheus text format.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let raw = try await global.withClient { client throws(CodesandClientError) in
            try await client.call(method: RPCMethod.metrics)
        }
        guard let text = try? JSONDecoder().decode(String.self, from: raw) else {
            printError("codesand: the metrics reply is not a string")
            throw ExitCode(2)
        }
        writeOut(1, Data(text.utf8))
    }
}

struct PoolCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool", abstract: "Manage the daemon's sandbox pool.", subcommands: [Reload.self])

    struct Reload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reload",
            abstract: "Re-read the daemon's config (and image) and move the pool over to it, slot by slot, while it serves.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let raw = try await global.withClient { client throws(CodesandClientError) in
                try await client.call(method: RPCMethod.poolReload, timeout: .seconds(120))
            }
            writeOut(1, raw + Data("\n".utf8))
        }
    }
}
