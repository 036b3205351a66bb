import CodesandProtocol
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What the bench waits for after a phase before it reads the machine's CPU: the daemon's pool at
/// rest (no slot busy, resetting or preparing: the last runs' slots torn down and prepared anew)
/// and the machine idle (a slot is ready while its pre-started interpreter still loads). The same
/// wait follows a bare phase, so that both modes' CPU counts take in the same idle background.
final class PhaseSettle: @unchecked Sendable {  // used by the bench's one task
    /// The longest wait; a wait that reaches it is counted (a busy machine) and noted in the report.
    static let capS = 20.0
    /// The idle window: at most one tick of /proc/stat per 4 CPUs in it (ticks are 10 ms, and a
    /// stray tick of the host's background must not keep the bench waiting).
    static let windowS = 0.05

    private let sustained: Bool
    private let status: () async -> JSONValue?
    private(set) var cappedWaits = 0

    init(sustained: Bool, status: @escaping () async -> JSONValue?) {
        self.sustained = sustained
        self.status = status
    }

    /// Waits after a phase (not `daemon`: a bare one, only the machine idle) and returns the seconds
    /// until the pool was at rest and the machine idle, the final idle window not counted. Without
    /// --sustained, a fixed 300 ms instead (the figures' CPU counts only need the work inside it).
    func afterPhase(daemon: Bool) async -> Double {
        let start = monotonicNanos()
        guard sustained else {
            try? await Task.sleep(for: .milliseconds(300))
            return secondsSince(start)
        }
        let allowed = 0.0101 * Double((ProcessInfo.processInfo.activeProcessorCount + 3) / 4)
        while secondsSince(start) < Self.capS {
            if daemon, !(await poolAtRest()) {
                try? await Task.sleep(for: .milliseconds(10))  // status reads every slot's cgroup: not too often
                continue
            }
            let at = secondsSince(start)
            let busy = machineBusySeconds()
            try? await Task.sleep(for: .seconds(Self.windowS))
            if let spent = machineBusySince(busy), spent <= allowed { return at }
        }
        cappedWaits += 1
        return secondsSince(start)
    }

    private func poolAtRest() async -> Bool {
        guard let slots = await status()?.objectValue?["slots"]?.objectValue else { return false }
        return ["busy", "resetting", "preparing"].allSatisfy { slots[$0] == .int(0) }
    }
}

/// The machine's busy CPU seconds so far, all CPUs (/proc/stat: user, nice, system, irq, softirq;
/// not idle, iowait or steal). Ticks of 1/CLK_TCK s: meaningful over phases of a second or more.
func machineBusySeconds() -> Double? {
    guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
          let line = stat.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
    let ticks = line.split(separator: " ").dropFirst().compactMap { Double($0) }
    guard ticks.count >= 7 else { return nil }
    return (ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// The machine's busy CPU seconds between `start` (a `machineBusySeconds()`) and now.
func machineBusySince(_ start: Double?) -> Double? {
    guard let start, let now = machineBusySeconds() else { return nil }
    return now - start
}
