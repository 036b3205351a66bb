/// What a run needs of its container beyond the exec API: its limits, what it used, and the kill
/// of every process it started. Two ways, chosen by the config, never guessed: through the
/// container's cgroups on this host (LXDHostCgroup: LXD on its unix socket), or through LXD's API
/// alone (LXDRemoteControl: `lxd.url`, whose containers' cgroups are on another machine).
protocol LXDRunControl: Sendable {
    /// The container was just made ready (off the request path).
    func ready() async
    /// A stage's memory and process limits (a restore puts the pool's back). False when the memory
    /// limit was refused (below what the container holds already, e.g. a pre-started interpreter).
    @discardableResult
    func setLimits(memoryBytes: Int64, pids: Int64) async throws -> Bool
    /// Before a stage: what the container has used so far.
    func beginStage() async -> LXDUsage
    /// While the stage runs, every 50 ms: the container's CPU time, and whether the exec's main
    /// process has exited leaving others behind (then they are killed, ending LXD's operation).
    func sample() async -> (cpuNs: UInt64, mainExited: Bool)
    /// After a stage: what the container has used so far.
    func endStage() async -> LXDUsage
    /// Kills every process the run started, at once; true when none is left within `timeoutMs`.
    func killExec(timeoutMs: Int) async -> Bool
    /// The command exited: kills what it left behind.
    func killLeftovers() async
    /// The exec command as this way of running needs it.
    func command(_ command: LXDExecCommand) -> LXDExecCommand
    /// Processes left in the ready container beyond its init (what earlier runs left behind).
    func strays() -> [Int32]
}

extension LXDRunControl {
    @discardableResult
    func killExec() async -> Bool { await killExec(timeoutMs: 3000) }
}

/// A container's counters: CPU time (ns), OOM kills, the memory peak (bytes).
struct LXDUsage: Sendable, Equatable {
    var cpuNs: UInt64 = 0
    var oomKills: Int64 = 0
    var memoryPeakBytes: Int64 = 0
}

extension LXDHostCgroup: LXDRunControl {
    func ready() async {}

    func beginStage() async -> LXDUsage {
        resetPeak()
        return usage()
    }

    func sample() async -> (cpuNs: UInt64, mainExited: Bool) { (cpuNs(), execMainHasExited()) }

    func endStage() async -> LXDUsage { usage() }

    func killLeftovers() async { _ = await killExec(timeoutMs: 3000) }

    func command(_ command: LXDExecCommand) -> LXDExecCommand { command }

    func strays() -> [Int32] { execProcesses() }

    private func usage() -> LXDUsage { LXDUsage(cpuNs: cpuNs(), oomKills: oomKills(), memoryPeakBytes: memoryPeak()) }
}
