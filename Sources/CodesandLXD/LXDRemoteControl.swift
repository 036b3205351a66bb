import CodesandProtocol
import Synchronization

/// A run's limits, accounting and kill through LXD's API alone, for a remote LXD (`lxd.url`): its
/// containers' cgroups are on another machine.
/// - Kill: an exec of `kill -9 -1` as the sandbox user. kill(2) with -1 signals every process the
///   caller may signal but itself — every process of the run, a `setsid` daemon included — in one
///   pass the kernel makes under its task-list lock, so a fork bomb cannot fork past it. The exec
///   needs a free process slot in the container: when a fork bomb holds them all, it fails, and the
///   container is stopped by force (every process gone; the next prepare restores and starts it).
/// - Leftovers: the program runs under a shell that does the same kill when the program exits.
///   LXD's operation ends only when nothing holds the exec's stdout any more, and there is no host
///   process tree to see the main process gone, so a background child would otherwise hold the
///   run until its deadline.
/// - CPU time and memory peak: LXD's instance state (`cpu.usage`, `memory.usage_peak`), for the
///   whole container since its start (its init idles). A state request takes tens of ms (~200 ms on
///   a loaded machine), so samples while a stage runs are the last answer, refreshed in the
///   background: a CPU limit is enforced up to one such request late.
/// - OOM: LXD's state counts no OOM kills; a stage counts as OOM-killed when the container's
///   memory peak reached its limit (no swap: there the kernel kills).
final class LXDRemoteControl: LXDRunControl {
    let client: LXDClient
    let container: String
    let uid: Int64
    let gid: Int64
    /// Within this of the limit, the memory peak counts as having reached it.
    static let oomSlackBytes: Int64 = 256 << 10
    /// The shell around the program: runs it ("$@": never parsed by the shell), kills what it left
    /// behind, exits as it did (128+n for a signal, which LXD reports the same way).
    static let wrapper = "\"$@\"; s=$?; kill -9 -1 2>/dev/null; exit $s"

    private struct State {
        var usage = LXDUsage()
        var processes = 1
        var refreshing = false
        var memoryLimit: Int64
        var pidsLimit: Int64
    }
    private let state: Mutex<State>

    /// `spec`: what the container was made with (its live limits until setLimits changes them).
    init(client: LXDClient, container: String, spec: LXDInstanceSpec) {
        self.client = client
        self.container = container
        uid = spec.lxd.uid
        gid = spec.lxd.gid
        state = Mutex(State(memoryLimit: spec.limits.memoryBytes, pidsLimit: spec.limits.pids + 1))
    }

    func ready() async { await refresh() }

    /// Through LXD (a PATCH of the instance's config), only when they change. True: LXD refuses a
    /// limit with an error rather than a quiet no.
    @discardableResult
    func setLimits(memoryBytes: Int64, pids: Int64) async throws -> Bool {
        guard state.withLock({ ($0.memoryLimit, $0.pidsLimit) != (memoryBytes, pids) }) else { return true }
        let config: JSONValue = .object(["limits.memory": .string("\(memoryBytes)"), "limits.processes": .string("\(pids)")])
        try await client.run(.PATCH, LXDPath.instance(container), json: .object(["config": config]), timeout: .seconds(30))
        state.withLock { s in
            s.memoryLimit = memoryBytes
            s.pidsLimit = pids
        }
        return true
    }

    /// The last answer: the one of the prepare, or of the stage before.
    func beginStage() async -> LXDUsage { state.withLock { $0.usage } }

    func sample() async -> (cpuNs: UInt64, mainExited: Bool) {
        let (cpu, start) = state.withLock { s in
            defer { s.refreshing = true }
            return (s.usage.cpuNs, !s.refreshing)
        }
        if start {
            Task { await self.refresh() }
        }
        return (cpu, false)
    }

    /// Asked afresh, also when the request was cancelled (a task of its own).
    func endStage() async -> LXDUsage {
        await Task { await self.refresh() }.value
        return state.withLock { $0.usage }
    }

    /// A task of its own: a cancelled request (its client gone) still has its run killed.
    func killExec(timeoutMs: Int) async -> Bool {
        await Task { await self.kill(timeoutMs: timeoutMs) }.value
    }

    private func kill(timeoutMs: Int) async -> Bool {
        let command = LXDExecCommand(argv: ["/bin/sh", "-c", "kill -9 -1"], env: ["PATH=/usr/bin:/bin"], uid: uid, gid: gid, cwd: "/")
        let deadline = Duration.milliseconds(timeoutMs)
        // 0: processes killed; 1: none was left. Anything else (126/127, or no exec at all): stop.
        if let r = try? await withDeadline(deadline, what: "kill in \(container)", { try await self.execDetached(command) }),
           r == 0 || r == 1 {
            return true
        }
        // What the container used, before the stop wipes it: a program that filled the memory
        // limit (and so left no room for the kill's exec) shows its OOM only here.
        await refresh()
        do {
            try await client.run(.PUT, LXDPath.state(container), json: .object(["action": .string("stop"), "force": .bool(true)]),
                                 timeout: .seconds(30))
            return true
        } catch {
            return false
        }
    }

    /// Runs `command` without websockets; its `return`.
    private func execDetached(_ command: LXDExecCommand) async throws -> Int64 {
        let response = try await client.call(.POST, LXDPath.exec(container), json: command.detachedRequestBody)
        guard let operation = response.operation else {
            throw LXDError(what: "exec in \(container)", message: "LXD answered without an operation")
        }
        let result = try await client.wait(operation, timeout: .seconds(10))
        guard case .int(let r) = result.metadata.objectValue?["return"] else {
            throw LXDError(what: "exec in \(container)", message: result.error.isEmpty ? "no exit code" : result.error)
        }
        return r
    }

    /// Nothing to do: the shell around the program killed its leftovers before LXD's operation could
    /// end (a program that kills that shell leaves them to the restore that follows every run).
    func killLeftovers() async {}

    func command(_ command: LXDExecCommand) -> LXDExecCommand {
        var wrapped = command
        wrapped.argv = ["/bin/sh", "-c", Self.wrapper, "sh"] + command.argv
        return wrapped
    }

    /// As many entries as processes beyond init when the container was last made ready (LXD tells
    /// their count, not their pids, which are the container's own anyway): -1 each.
    func strays() -> [Int32] {
        Array(repeating: -1, count: max(0, state.withLock { $0.processes } - 1))
    }

    /// LXD's instance state into the counters. Counters only grow within a container's life, so
    /// an answer that was overtaken by a later one changes nothing.
    private func refresh() async {
        defer { state.withLock { $0.refreshing = false } }
        guard let meta = try? await client.call(.GET, LXDPath.state(container), timeout: .seconds(10)).metadata.objectValue else {
            return
        }
        func int(_ v: JSONValue?) -> Int64? {
            switch v {
            case .int(let n): return n
            case .double(let d): return Int64(exactly: d.rounded())
            default: return nil
            }
        }
        let cpu = int(meta["cpu"]?.objectValue?["usage"]).map { UInt64(clamping: $0) }
        let peak = int(meta["memory"]?.objectValue?["usage_peak"])
        let processes = int(meta["processes"])
        state.withLock { s in
            if let cpu { s.usage.cpuNs = max(s.usage.cpuNs, cpu) }
            if let peak {
                s.usage.memoryPeakBytes = max(s.usage.memoryPeakBytes, peak)
                if peak >= s.memoryLimit - Self.oomSlackBytes { s.usage.oomKills = 1 }
            }
            if let processes { s.processes = Int(processes) }
        }
    }
}
