import CodesandCore
import Glibc

/// cgroup v1 (legacy or hybrid): one directory per controller hierarchy.
struct CgroupV1Driver: CgroupDriver {
    let version = "v1"
    /// Mount points of the controllers we use.
    let memory, pids, cpu, cpuacct, freezer: String
    /// Sub-path under each hierarchy, e.g. "codesand".
    let parent: String
    /// TCP/UDP buffer bytes per slot (v1 counts them apart from the memory limit).
    var socketMemoryBytes: Int64 = 16 << 20

    static let needed = ["memory", "pids", "cpu", "cpuacct", "freezer"]

    static func fromMountinfo(parent: String, socketMemoryBytes: Int64) throws -> CgroupV1Driver {
        let info = try FileIO.read("/proc/self/mountinfo")
        var mounts: [String: String] = [:]
        for line in info.split(separator: "\n") {
            // "... mountpoint options - cgroup cgroup rw,memory"
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2 else { continue }
            let left = halves[0].split(separator: " "), right = halves[1].split(separator: " ")
            guard left.count >= 5, right.count >= 3, right[0] == "cgroup" else { continue }
            for option in right[2].split(separator: ",") where needed.contains(String(option)) {
                mounts[String(option)] = String(left[4])
            }
        }
        let missing = needed.filter { mounts[$0] == nil }
        guard missing.isEmpty else {
            throw SandboxError("cgroup v1: controllers not mounted: \(missing.joined(separator: ", "))")
        }
        return CgroupV1Driver(memory: mounts["memory"]!, pids: mounts["pids"]!, cpu: mounts["cpu"]!,
                              cpuacct: mounts["cpuacct"]!, freezer: mounts["freezer"]!, parent: parent,
                              socketMemoryBytes: socketMemoryBytes)
    }

    func removeParent() {
        for dir in parentDirectories { rmdir(dir) }
    }

    var parentDirectories: [String] { Set([memory, pids, cpu, cpuacct, freezer]).sorted().map { "\($0)/\(parent)" } }

    func removeStale(keeping count: Int) {
        for i in Self.staleSlots(in: "\(freezer)/\(parent)", keeping: count) {
            let name = "\(parent)/slot-\(i)"
            let slot = SlotCgroupV1(memory: "\(memory)/\(name)", pids: "\(pids)/\(name)", cpu: "\(cpu)/\(name)",
                                   cpuacct: "\(cpuacct)/\(name)", freezer: "\(freezer)/\(name)")
            slot.killAll(timeoutMs: 2000)
            slot.remove()
        }
    }

    func slot(_ index: Int) throws -> SlotCgroup {
        let name = "\(parent)/slot-\(index)"
        let dirs = [memory, pids, cpu, cpuacct, freezer].map { "\($0)/\(name)" }
        // The same mount can carry several controllers (cpu,cpuacct): create each directory once.
        for dir in Set(dirs) { try FileIO.mkdirs(dir) }
        var slot = SlotCgroupV1(memory: dirs[0], pids: dirs[1], cpu: dirs[2], cpuacct: dirs[3], freezer: dirs[4])
        slot.socketMemoryBytes = socketMemoryBytes
        // 0 (the default, written to be sure): a task that joins the slot brings none of its
        // earlier charges along (an init's copy of the daemon's pages stays charged where it was),
        // so a run's peak counts what its sandbox uses. What is left at rmdir goes to the parent.
        try? FileIO.write("\(dirs[0])/memory.move_charge_at_immigrate", "0")
        return slot
    }
}

struct SlotCgroupV1: SlotCgroup {
    let memory, pids, cpu, cpuacct, freezer: String
    var socketMemoryBytes: Int64 = 16 << 20
    private let applied = AppliedLimits()
    private let files = HeldFiles()

    init(memory: String, pids: String, cpu: String, cpuacct: String, freezer: String) {
        (self.memory, self.pids, self.cpu, self.cpuacct, self.freezer) = (memory, pids, cpu, cpuacct, freezer)
    }

    var procsFiles: [String] {
        Array(Set([memory, pids, cpu, cpuacct, freezer])).sorted().map { "\($0)/cgroup.procs" }
    }

    func joinDescriptors() throws -> [Int32] { try files.duplicates(procsFiles) }

    func apply(limits: LimitSet) throws {
        try applied.apply(limits, fixed: writeFixed, memory: writeMemory, pids: { try FileIO.write("\(pids)/pids.max", "\($0)") })
    }

    private func writeMemory(_ bytes: Int64) throws {
        try setMemory(bytes)
        // v1 charges TCP and UDP buffers to a counter of their own, and only once it has a limit:
        // without one a snippet queues gigabytes in loopback sockets, outside memory_bytes, until
        // the host's tcp_mem stalls every TCP connection on the machine. (Other kernel memory:
        // pipes, unix sockets, IPC, inotify, epoll, timers, dentries, is in memory.limit_in_bytes.)
        let tcp = "\(memory)/memory.kmem.tcp.limit_in_bytes"
        if FileIO.exists(tcp) { try FileIO.write(tcp, "\(min(bytes, socketMemoryBytes))") }
    }

    private func writeFixed() throws {
        try? FileIO.write("\(memory)/memory.swappiness", "0")
        // One CPU's worth per sandbox, so one run cannot take both cores of a small host.
        try FileIO.write("\(cpu)/cpu.cfs_period_us", "100000")
        try FileIO.write("\(cpu)/cpu.cfs_quota_us", "100000")
    }

    /// CPU usage is read before and after a run; only the memory peak needs a reset.
    func resetCounters() throws {
        try files.write("\(memory)/memory.max_usage_in_bytes", "0")
    }

    /// memory.memsw (memory+swap) must stay ≥ memory at every moment: lowering, memory goes
    /// first; raising, memsw. (Trying one order and falling back hid the real error, EBUSY.)
    private func setMemory(_ bytes: Int64) throws {
        let limit = "\(memory)/memory.limit_in_bytes", memsw = "\(memory)/memory.memsw.limit_in_bytes"
        guard FileIO.exists(memsw) else { return try FileIO.write(limit, "\(bytes)") }
        let current = (try? FileIO.readInt(limit)) ?? 0
        for file in bytes < current ? [limit, memsw] : [memsw, limit] { try FileIO.write(file, "\(bytes)") }
    }

    func drainChargeBatches() {
        let limit = "\(memory)/memory.limit_in_bytes"
        guard let held = try? FileIO.readInt(limit) else { return }
        let usage = memoryUsage()
        guard usage > 4096 else { return }
        try? FileIO.write(limit, "\(usage - 4096)")  // below memsw's: allowed at any time
        try? FileIO.write(limit, "\(held)")
    }

    /// `memory.force_empty` reclaims what it can of the cgroup's charges (page cache, dentries;
    /// not the pages of live tmpfs files or, without swap, of live processes). In an emptied
    /// cgroup, a sandbox's own tmpfs pages are freed when its mount namespace goes, a moment after
    /// its last process: retry briefly while they are still charged.
    @discardableResult func reclaim() -> Int64 {
        let enough = reclaimedEnough
        var left = memoryUsage()
        if left <= enough { return left }  // after most runs: nothing to reclaim, no listing of the cgroup
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
            try? files.write("\(memory)/memory.force_empty", "0")
            left = memoryUsage()
            if left <= enough || !empty { break }
            usleep(1000)
        }
        return left
    }

    /// Page cache of host files charged here: `cache` less `shmem` (the sandboxes' tmpfs pages).
    func hostFileCache() -> Int64 { pageCache().hostFiles }

    /// From `memory.stat`: the page cache of host files (`cache` less `shmem`) and the tmpfs pages.
    private func pageCache() -> (hostFiles: Int64, shmem: Int64) {
        let stat = (try? files.read("\(memory)/memory.stat")) ?? ""
        let counts = KeyedLines.values(stat, ["cache", "shmem"]), all = counts[0] ?? 0, shmem = counts[1] ?? 0
        return (max(0, all - shmem), shmem)
    }

    func oomKills() -> Int64 {
        KeyedLines.value((try? files.read("\(memory)/memory.oom_control")) ?? "", "oom_kill") ?? 0
    }

    func cpuNs() -> UInt64 { UInt64(max(0, (try? files.readInt("\(cpuacct)/cpuacct.usage")) ?? 0)) }

    func memoryPeak() -> Int64 { (try? files.readInt("\(memory)/memory.max_usage_in_bytes")) ?? 0 }

    func memoryUsage() -> Int64 { (try? files.readInt("\(memory)/memory.usage_in_bytes")) ?? 0 }

    /// Opened anew each time: a held cgroup.procs reads empty for good once it has (its iterator).
    func processes() -> [pid_t] { CgroupDetect.pids(in: "\(freezer)/cgroup.procs") }

    func isEmpty() -> Bool { processes().isEmpty }

    /// Freeze, SIGKILL every process, thaw: a frozen fork bomb cannot fork between the listing and the kill.
    @discardableResult func killAll(timeoutMs: Int) -> Bool {
        if isEmpty() { return true }
        let state = "\(freezer)/freezer.state"
        try? FileIO.write(state, "FROZEN")
        _ = CgroupDetect.poll(timeoutMs: 200) { ((try? FileIO.read(state)) ?? "").hasPrefix("FROZEN") }
        for pid in processes() { kill(pid, SIGKILL) }
        try? FileIO.write(state, "THAWED")  // always thaw: SIGKILL is only acted on by running tasks
        return CgroupDetect.poll(timeoutMs: timeoutMs) {
            if isEmpty() { return true }
            for pid in processes() { kill(pid, SIGKILL) }
            return false
        }
    }

    @discardableResult func remove() -> Bool {
        files.closeAll()
        var ok = true
        for dir in Set([memory, pids, cpu, cpuacct, freezer]) where rmdir(dir) != 0 && errno != ENOENT { ok = false }
        return ok
    }
}
