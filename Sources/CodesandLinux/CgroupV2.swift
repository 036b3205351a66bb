import CodesandCore
import Glibc

/// cgroup v2 (unified): one directory per slot under the daemon's own delegated subtree.
struct CgroupV2Driver: CgroupDriver {
    let version = "v2"
    /// The directory holding the slot cgroups, e.g. /sys/fs/cgroup/system.slice/codesand.service/slots.
    let slotsDir: String
    /// False only in tests on hosts whose v2 hierarchy has no controllers (limits are then not set).
    let requireControllers: Bool

    static let controllers = ["memory", "pids", "cpu"]

    /// Finds the daemon's cgroup, moves the daemon into a leaf ("supervisor", as v2 forbids processes
    /// in a cgroup whose controllers are delegated to children) and enables the controllers for slots.
    static func forDaemon(mount: String = "/sys/fs/cgroup", slotsName: String) throws -> CgroupV2Driver {
        let own = try FileIO.read("/proc/self/cgroup").split(separator: "\n")
            .first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) } ?? "/"
        var base = mount + (own == "/" ? "" : own)
        if base.hasSuffix("/supervisor") { base = String(base.dropLast("/supervisor".count)) }  // restarted in place
        if own != "/" {
            try FileIO.mkdirs("\(base)/supervisor")
            try FileIO.write("\(base)/supervisor/cgroup.procs", "0")
        }
        let enable = controllers.map { "+\($0)" }.joined(separator: " ")
        try FileIO.write("\(base)/cgroup.subtree_control", enable)
        let slots = "\(base)/\(slotsName)"
        try FileIO.mkdirs(slots)
        try FileIO.write("\(slots)/cgroup.subtree_control", enable)
        return CgroupV2Driver(slotsDir: slots, requireControllers: true)
    }

    func removeParent() { rmdir(slotsDir) }

    var parentDirectories: [String] { [slotsDir] }

    func removeStale(keeping count: Int) {
        for i in Self.staleSlots(in: slotsDir, keeping: count) {
            let slot = SlotCgroupV2(dir: "\(slotsDir)/slot-\(i)", requireControllers: requireControllers)
            // rmdir fails on a populated cgroup: a sandbox an earlier daemon left running (it was
            // SIGKILLed mid-run) would keep the slot, and its processes, for good. Kill them first.
            slot.killAll(timeoutMs: 2000)
            slot.remove()
        }
    }

    func slot(_ index: Int) throws -> SlotCgroup {
        let dir = "\(slotsDir)/slot-\(index)"
        try FileIO.mkdirs(dir)
        let slot = SlotCgroupV2(dir: dir, requireControllers: requireControllers)
        return slot
    }
}

struct SlotCgroupV2: SlotCgroup {
    let dir: String
    let requireControllers: Bool
    private let applied = AppliedLimits()
    private let files = HeldFiles()

    init(dir: String, requireControllers: Bool) {
        self.dir = dir
        self.requireControllers = requireControllers
    }

    var procsFiles: [String] { ["\(dir)/cgroup.procs"] }

    func joinDescriptors() throws -> [Int32] { try files.duplicates(procsFiles) }

    func apply(limits: LimitSet) throws {
        try applied.apply(limits, fixed: {
            try write("memory.swap.max", "0", onlyIfPresent: true)  // absent: no swap accounting configured
            try write("cpu.max", "100000 100000")
        }, memory: writeMemory, pids: { try write("pids.max", "\($0)") })
    }

    /// v1 refuses a memory limit below what the cgroup holds once it cannot reclaim the rest
    /// (EBUSY); v2 takes it and OOM-kills what it cannot reclaim: a waiting interpreter, or the
    /// init itself after a compile whose files the run's limit cannot hold. Here v2 reclaims
    /// first (`memory.reclaim`, 5.19+) and refuses as v1 does, so both lead to the same outcome
    /// (a plain sandbox instead; a run that cannot fit: `oom`). `memory.current` also counts the
    /// per-CPU charge batches the write drains (64 pages per CPU): that much over is not refused.
    /// Without `memory.reclaim` the limit is written as it is (the kernel's own reclaim first).
    private func writeMemory(_ bytes: Int64) throws {
        let path = "\(dir)/memory.max", reclaim = "\(dir)/memory.reclaim"
        if FileIO.exists(path), FileIO.exists(reclaim) {
            let slack = Int64(max(1, sysconf(Int32(_SC_NPROCESSORS_CONF)))) * 64 * 4096
            var usage = memoryUsage()
            if usage > bytes + slack {
                try? files.write(reclaim, "\(usage - bytes)")
                usage = memoryUsage()
            }
            if usage > bytes + slack { throw SystemCallError(function: "write", context: path, errno: EBUSY) }
        }
        try write("memory.max", "\(bytes)")
    }

    /// A controller's file; without `requireControllers` (tests on a host whose v2 tree has no
    /// controllers enabled), an absent one is skipped.
    private func write(_ file: String, _ value: String, onlyIfPresent: Bool = false) throws {
        let path = "\(dir)/\(file)"
        if (onlyIfPresent || !requireControllers) && !FileIO.exists(path) { return }
        try FileIO.write(path, value)
    }

    /// CPU usage is read before and after a run; only the memory peak needs a reset.
    func resetCounters() throws {
        // memory.peak is reset by a write on kernels ≥ 6.12 (older ones keep the lifetime peak),
        // for reads through the same descriptor: the held one, which memoryPeak reads.
        try? files.write("\(dir)/memory.peak", "reset")
    }

    func drainChargeBatches() {
        let path = "\(dir)/memory.max"
        guard let held = try? files.read(path), FileIO.exists(path) else { return }
        let usage = memoryUsage()
        // v2 OOM-kills when a lower memory.max cannot be met (v1 refuses it): only with page cache
        // enough to reclaim the page should the batches hold none.
        guard usage > 4096, hostFileCache() >= 1 << 20 else { return }
        try? FileIO.write(path, "\(usage - 4096)")
        try? FileIO.write(path, String(held.filter { !$0.isWhitespace }))
    }

    /// `memory.reclaim` (5.19+) asks the kernel to reclaim that many bytes; what it cannot (live
    /// tmpfs files, live processes' memory without swap) stays charged.
    @discardableResult func reclaim() -> Int64 {
        let enough = reclaimedEnough
        var left = memoryUsage()
        // After most runs: nothing to reclaim, no listing of the cgroup.
        guard left > enough, FileIO.exists("\(dir)/memory.reclaim") else { return left }
        let empty = isEmpty()
        // Host files' page cache stays, up to hostFileCacheKept (Cgroup.swift). A dead sandbox's
        // tmpfs pages go a moment after its last process: waited for, not forced out with it.
        var (cache, shmem) = pageCache(), waits = empty ? 5 : 0
        while left - cache > enough && shmem > 0 && waits > 0 {
            usleep(1000)
            ((cache, shmem), left, waits) = (pageCache(), memoryUsage(), waits - 1)
        }
        if left - cache <= enough && cache <= hostFileCacheKept { return left }
        for _ in 0..<(empty ? 5 : 1) {
            try? files.write("\(dir)/memory.reclaim", "\(left)")
            left = memoryUsage()
            if left <= enough || !empty { break }
            usleep(1000)
        }
        return left
    }

    /// Page cache of host files charged here: `file` less `shmem` (the sandboxes' tmpfs pages).
    func hostFileCache() -> Int64 { pageCache().hostFiles }

    /// From `memory.stat`: the page cache of host files (`file` less `shmem`) and the tmpfs pages.
    private func pageCache() -> (hostFiles: Int64, shmem: Int64) {
        let stat = (try? files.read("\(dir)/memory.stat")) ?? ""
        let counts = KeyedLines.values(stat, ["file", "shmem"]), all = counts[0] ?? 0, shmem = counts[1] ?? 0
        return (max(0, all - shmem), shmem)
    }

    func oomKills() -> Int64 { KeyedLines.value((try? files.read("\(dir)/memory.events")) ?? "", "oom_kill") ?? 0 }

    func cpuNs() -> UInt64 {
        UInt64(max(0, KeyedLines.value((try? files.read("\(dir)/cpu.stat")) ?? "", "usage_usec") ?? 0)) * 1000
    }

    func memoryPeak() -> Int64 { (try? files.readInt("\(dir)/memory.peak")) ?? 0 }

    func memoryUsage() -> Int64 { (try? files.readInt("\(dir)/memory.current")) ?? 0 }

    /// Opened anew each time: a held cgroup.procs reads empty for good once it has (its iterator).
    func processes() -> [pid_t] { CgroupDetect.pids(in: "\(dir)/cgroup.procs") }

    func isEmpty() -> Bool {
        KeyedLines.value((try? files.read("\(dir)/cgroup.events")) ?? "", "populated") == 0
    }

    /// `cgroup.kill` (5.14+) kills every process atomically; older kernels freeze, kill, thaw.
    @discardableResult func killAll(timeoutMs: Int) -> Bool {
        if isEmpty() { return true }
        if (try? FileIO.write("\(dir)/cgroup.kill", "1")) == nil {
            try? FileIO.write("\(dir)/cgroup.freeze", "1")
            _ = CgroupDetect.poll(timeoutMs: 200) { KeyedLines.value((try? FileIO.read("\(dir)/cgroup.events")) ?? "", "frozen") == 1 }
            for pid in processes() { kill(pid, SIGKILL) }
            try? FileIO.write("\(dir)/cgroup.freeze", "0")
        }
        return CgroupDetect.poll(timeoutMs: timeoutMs) { isEmpty() }
    }

    @discardableResult func remove() -> Bool {
        files.closeAll()
        return rmdir(dir) == 0 || errno == ENOENT
    }
}
