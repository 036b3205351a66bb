import CodesandCore
import Glibc

/// cgroup v1 (legacy or hybrid): one directory per controller hierarchy.
struct CgroupV1Driver: CgroupDriver {
    let version = "v1"
    /// Mount points of the controllers we use.
    let memory, pids, cpu, cpuacct, freezer: String
    /// Sub-path under each hierarchy, e.g. "codesand".
    let parent: String

    static let needed = ["memory", "pids", "cpu", "cpuacct", "freezer"]

    static func fromMountinfo(parent: String) throws -> CgroupV1Driver {
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
                              cpuacct: mounts["cpuacct"]!, freezer: mounts["freezer"]!, parent: parent)
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
        let slot = SlotCgroupV1(memory: dirs[0], pids: dirs[1], cpu: dirs[2], cpuacct: dirs[3], freezer: dirs[4])
        // Tasks never leave memory charges behind after kill; move them to the parent on removal.
        try? FileIO.write("\(dirs[0])/memory.move_charge_at_immigrate", "0")
        return slot
    }
}

struct SlotCgroupV1: SlotCgroup {
    let memory, pids, cpu, cpuacct, freezer: String

    var procsFiles: [String] {
        Array(Set([memory, pids, cpu, cpuacct, freezer])).sorted().map { "\($0)/cgroup.procs" }
    }

    func apply(limits: LimitSet) throws {
        try setMemory(limits.memoryBytes)
        try? FileIO.write("\(memory)/memory.swappiness", "0")
        try FileIO.write("\(pids)/pids.max", "\(limits.pids)")
        // One CPU's worth per sandbox, so one run cannot take both cores of a small host.
        try FileIO.write("\(cpu)/cpu.cfs_period_us", "100000")
        try FileIO.write("\(cpu)/cpu.cfs_quota_us", "100000")
    }

    /// CPU usage is read before and after a run; only the memory peak needs a reset.
    func resetCounters() throws {
        try FileIO.write("\(memory)/memory.max_usage_in_bytes", "0")
    }

    /// memory.memsw (memory+swap) must stay ≥ memory at every moment, so the order depends on the direction.
    private func setMemory(_ bytes: Int64) throws {
        let memsw = "\(memory)/memory.memsw.limit_in_bytes"
        let hasSwapAccounting = FileIO.exists(memsw)
        do {
            try FileIO.write("\(memory)/memory.limit_in_bytes", "\(bytes)")
            if hasSwapAccounting { try FileIO.write(memsw, "\(bytes)") }
        } catch {
            guard hasSwapAccounting else { throw error }
            try FileIO.write(memsw, "\(bytes)")
            try FileIO.write("\(memory)/memory.limit_in_bytes", "\(bytes)")
        }
    }

    func oomKills() -> Int64 {
        FileIO.keyed((try? FileIO.read("\(memory)/memory.oom_control")) ?? "", "oom_kill") ?? 0
    }

    func cpuNs() -> UInt64 { UInt64(max(0, (try? FileIO.readInt("\(cpuacct)/cpuacct.usage")) ?? 0)) }

    func memoryPeak() -> Int64 { (try? FileIO.readInt("\(memory)/memory.max_usage_in_bytes")) ?? 0 }

    func processes() -> [pid_t] { CgroupDetect.pids(in: "\(freezer)/cgroup.procs") }

    func isEmpty() -> Bool { processes().isEmpty }

    /// Freeze, SIGKILL every process, thaw: a frozen fork bomb cannot fork between the listing and the kill.
    @discardableResult func killAll(timeoutMs: Int) -> Bool {
        if isEmpty() { return true }
        let state = "\(freezer)/freezer.state"
        try? FileIO.write(state, "FROZEN")
        _ = CgroupDetect.poll(timeoutMs: 200) { ((try? FileIO.read(state)) ?? "").hasPrefix("FROZEN") }
        for pid in CgroupDetect.pids(in: "\(freezer)/cgroup.procs") { kill(pid, SIGKILL) }
        try? FileIO.write(state, "THAWED")  // always thaw: SIGKILL is only acted on by running tasks
        return CgroupDetect.poll(timeoutMs: timeoutMs) {
            if isEmpty() { return true }
            for pid in CgroupDetect.pids(in: "\(freezer)/cgroup.procs") { kill(pid, SIGKILL) }
            return false
        }
    }

    @discardableResult func remove() -> Bool {
        var ok = true
        for dir in Set([memory, pids, cpu, cpuacct, freezer]) where rmdir(dir) != 0 && errno != ENOENT { ok = false }
        return ok
    }
}
