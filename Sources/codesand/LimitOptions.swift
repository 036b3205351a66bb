import ArgumentParser
import CodesandProtocol

/// `codesand run`'s limit flags: one per limit of the table (`Limit`), each named, typed and explained
/// by its row (`--wall-ms` for `wall_ms`). ArgumentParser declares an option as a property, so each
/// limit has one here; `value(of:)` switches over every limit, so a new one does not compile until
/// it has its flag.
struct LimitOptions: ParsableArguments {
    @Option(name: .customLong(Limit.wallMs.flag), help: LimitOptions.help(.wallMs)) var wallMs: Int64?
    @Option(name: .customLong(Limit.cpuMs.flag), help: LimitOptions.help(.cpuMs)) var cpuMs: Int64?
    @Option(name: .customLong(Limit.memoryBytes.flag), help: LimitOptions.help(.memoryBytes)) var memoryBytes: Int64?
    @Option(name: .customLong(Limit.pids.flag), help: LimitOptions.help(.pids)) var pids: Int64?
    @Option(name: .customLong(Limit.outputBytes.flag), help: LimitOptions.help(.outputBytes)) var outputBytes: Int64?
    @Option(name: .customLong(Limit.outputLines.flag), help: LimitOptions.help(.outputLines)) var outputLines: Int64?

    static func help(_ limit: Limit) -> ArgumentHelp {
        ArgumentHelp(limit.row.meaning.prefix(1).uppercased() + limit.row.meaning.dropFirst() + ".", valueName: limit.row.unit.rawValue)
    }

    func value(of limit: Limit) -> Int64? {
        switch limit {
        case .wallMs: wallMs
        case .cpuMs: cpuMs
        case .memoryBytes: memoryBytes
        case .pids: pids
        case .outputBytes: outputBytes
        case .outputLines: outputLines
        }
    }

    /// The flags given, as the request's `limits`; nil when none was (the daemon's defaults apply).
    var runLimits: RunLimits? {
        let limits = RunLimits(value(of:))
        return limits == RunLimits() ? nil : limits
    }
}
