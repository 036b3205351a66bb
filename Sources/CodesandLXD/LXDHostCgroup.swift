import CodesandCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A running container's cgroups, seen from the host: what its processes used (CPU, memory peak,
/// OOM kills) and the kill of every process an exec started, at once.
///
/// LXD puts exec'd processes one level below the container's init in the unified hierarchy
/// (`lxc.payload.NAME/.lxc`; on a v1 host the controllers share `lxc.payload.NAME` with init), so
/// `cgroup.kill` there kills a run — a fork bomb, a `setsid` daemon — and leaves init alone. The
/// paths are read from `/proc/<init>/cgroup` at each prepare: LXD may add a suffix to the name.
struct LXDHostCgroup: Sendable, Equatable {
    /// Controller → the container's directory in that v1 hierarchy ("memory" → /sys/fs/cgroup/memory/lxc.payload.X).
    var v1: [String: String]
    /// The container's directory in the cgroup2 (unified) hierarchy, if the host mounts one.
    var unified: String?
    /// The container's init, on the host.
    var initPID: Int32 = 0

    /// The cgroups of the process `pid` (the container's init).
    static func of(pid: Int32, root: String = "/sys/fs/cgroup") -> LXDHostCgroup? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return nil }
        var cgroup = parse(text, root: root, unifiedRoot: unifiedRoot(root))
        cgroup.initPID = pid
        return cgroup
    }

    /// `/proc/PID/cgroup` lines `ID:CONTROLLERS:PATH`; ID 0 with no controllers is the unified one.
    static func parse(_ text: String, root: String, unifiedRoot: String?) -> LXDHostCgroup {
        var v1: [String: String] = [:]
        var unified: String?
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let path = String(parts[2])
            if parts[0] == "0" && parts[1].isEmpty {
                unified = unifiedRoot.map { $0 + path }
                continue
            }
            for controller in parts[1].split(separator: ",") where !controller.hasPrefix("name=") {
                v1[String(controller)] = "\(root)/\(controller)\(path)"
            }
        }
        return LXDHostCgroup(v1: v1, unified: unified)
    }

    /// Where cgroup2 is mounted: `root/unified` on a hybrid host, `root` itself on a v2 one.
    static func unifiedRoot(_ root: String) -> String? {
        if FileManager.default.fileExists(atPath: root + "/unified/cgroup.procs") { return root + "/unified" }
        if FileManager.default.fileExists(atPath: root + "/cgroup.controllers") { return root }
        return nil
    }

    /// The cgroup of the processes exec started (below the container's init).
    var execDir: String? { unified.map { $0 + "/.lxc" } }

    /// CPU time of the container's processes (init's is next to nothing), in ns.
    func cpuNs() -> UInt64 {
        if let dir = v1["cpuacct"], let n = read(dir + "/cpuacct.usage").flatMap({ UInt64($0) }) { return n }
        if v1.isEmpty, let dir = unified, let stat = read(dir + "/cpu.stat") {
            return KeyedLines.value(stat, "usage_usec").map { UInt64($0) * 1000 } ?? 0
        }
        return 0
    }

    func oomKills() -> Int64 {
        if let dir = v1["memory"], let text = read(dir + "/memory.oom_control") { return KeyedLines.value(text, "oom_kill") ?? 0 }
        if let dir = unified, let text = read(dir + "/memory.events") { return KeyedLines.value(text, "oom_kill") ?? 0 }
        return 0
    }

    func memoryPeak() -> Int64 {
        if let dir = v1["memory"] { return read(dir + "/memory.max_usage_in_bytes").flatMap { Int64($0) } ?? 0 }
        if let dir = unified { return read(dir + "/memory.peak").flatMap { Int64($0) } ?? 0 }
        return 0
    }

    /// Starts the peak over (v1; v2's memory.peak is reset by a write on newer kernels only).
    func resetPeak() {
        if let dir = v1["memory"] { _ = write(dir + "/memory.max_usage_in_bytes", "0") }
        else if let dir = unified { _ = write(dir + "/memory.peak", "0") }
    }

    /// The processes exec started and their descendants, now.
    func execProcesses() -> [Int32] {
        guard let dir = execDir, let text = read(dir + "/cgroup.procs") else { return [] }
        return text.split(separator: "\n").compactMap { Int32($0) }
    }

    /// Whether the exec's main process still runs. It is the one process of the exec's cgroup whose
    /// parent is outside the container (LXD's `forkexec`, on the host); its children's parents are
    /// in the cgroup, or the container's init once orphaned. So a cgroup with processes but no such
    /// one means the main process has exited and left others behind (LXD's operation then waits
    /// for them when they hold its output). The cgroup is empty before the exec (a restore, or the
    /// last exec's leftovers killed).
    func execMainHasExited() -> Bool {
        let procs = execProcesses()
        guard !procs.isEmpty else { return false }
        let inside = Set(procs).union([initPID])
        return procs.allSatisfy { pid in parent(of: pid).map { inside.contains($0) } ?? true }
    }

    private func parent(of pid: Int32) -> Int32? {
        guard let status = read("/proc/\(pid)/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("PPid:") {
            return Int32(line.dropFirst(5).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// Kills every process exec started, at once (`cgroup.kill`), or one by one where the kernel has
    /// no cgroup.kill (before 5.14): then the container's freezer holds them still while they die.
    /// Returns when none is left, or false after `timeoutMs`.
    @discardableResult
    func killExec(timeoutMs: Int = 3000) async -> Bool {
        guard let dir = execDir else { return false }
        let start = monotonicNs()
        while true {
            if !write(dir + "/cgroup.kill", "1") {
                let freezer = v1["freezer"]
                if let freezer { _ = write(freezer + "/freezer.state", "FROZEN") }
                for pid in execProcesses() { kill(pid, SIGKILL) }
                if let freezer { _ = write(freezer + "/freezer.state", "THAWED") }
            }
            // Killed processes leave the cgroup a moment after they die.
            for _ in 0..<20 {
                if execProcesses().isEmpty { return true }
                // A cancelled request still waits for its kill (Task.sleep would return at once).
                if Task.isCancelled { usleep(1000) } else { try? await Task.sleep(for: .milliseconds(1)) }
            }
            if monotonicNs() - start > UInt64(timeoutMs) * 1_000_000 { return false }
        }
    }

    /// A run's memory and process limits, set on the container's own cgroups (v1), which LXD set
    /// to the pool's defaults; a restore puts LXD's values back. False when the memory limit was
    /// refused (v1: below what the container holds already, e.g. a pre-started interpreter).
    @discardableResult
    func setLimits(memoryBytes: Int64, pids: Int64) -> Bool {
        var memorySet = true
        if let dir = v1["memory"] { memorySet = write(dir + "/memory.limit_in_bytes", "\(memoryBytes)") }
        else if let dir = unified { memorySet = write(dir + "/memory.max", "\(memoryBytes)") }
        if let dir = v1["pids"] { _ = write(dir + "/pids.max", "\(pids)") }
        else if let dir = unified { _ = write(dir + "/pids.max", "\(pids)") }
        return memorySet
    }

    private func read(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func write(_ path: String, _ value: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        return bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count
    }
}
