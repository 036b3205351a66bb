import CSandbox
import CodesandCore
import Foundation
import Glibc
import Synchronization

/// The cgroup of one sandbox slot: limits, accounting and the killer.
protocol SlotCgroup: Sendable {
    /// The `cgroup.procs` files a process must write "0" to, to join this slot's cgroup(s).
    var procsFiles: [String] { get }
    /// Sets memory, pids and CPU limits.
    func apply(limits: LimitSet) throws
    /// Zeroes the memory peak counter.
    func resetCounters() throws
    /// Frees what earlier runs (or a compile stage) left charged to the cgroup: page cache of host
    /// files they read, dentries, inodes — if more than `worth` bytes are charged (below that, the
    /// reclaim costs more CPU than it frees). Returns the bytes still charged.
    @discardableResult func reclaim(above worth: Int64) -> Int64
    /// The OOM-kill count so far (compare before and after a run).
    func oomKills() -> Int64
    func cpuNs() -> UInt64
    func memoryPeak() -> Int64
    /// The memory charged now.
    func memoryUsage() -> Int64
    /// Kills every process in the cgroup and waits until it is empty (or `timeoutMs` passes).
    /// Returns true when empty.
    @discardableResult func killAll(timeoutMs: Int) -> Bool
    func isEmpty() -> Bool
    /// The pids in the cgroup now.
    func processes() -> [pid_t]
    /// Removes the (empty) cgroup directories; false if one is still busy.
    @discardableResult func remove() -> Bool
}

/// What a reclaimed cgroup may still hold: a few kernel objects of dead processes are not
/// reclaimable at once, and chasing them to zero costs tens of milliseconds per sandbox.
let reclaimedEnough: Int64 = 256 << 10

/// What a slot's cgroup may keep charged between sandboxes without a reclaim. A `sh`/`bash` run
/// leaves 300–450 KiB (page cache, a few kernel objects), and `memory.force_empty` of that cost
/// 1.5 ms of CPU or more per run — as much as the program. Below this the next sandbox starts
/// with it charged: its reported peak may be that much high, and under its memory limit the
/// kernel reclaims the page cache first, as it would anyway.
let leftoverKeptBetweenRuns: Int64 = 2 << 20

/// The limits a slot's cgroup holds, as last written: a slot's next sandbox usually wants the ones
/// the last left (the defaults), and the writes (six or seven files, each an open, write and close,
/// a memory limit's possibly a reclaim) are skipped then. Unknown (nil) while a write is under way
/// or after one failed.
final class AppliedLimits: Sendable {
    private let value = Mutex<LimitSet?>(nil)

    /// Runs `write` unless the cgroup holds `limits` already.
    func apply(_ limits: LimitSet, write: () throws -> Void) throws {
        if value.withLock({ $0 }) == limits { return }
        value.withLock { $0 = nil }
        try write()
        value.withLock { $0 = limits }
    }
}

/// Where the slots' cgroups live and how they are made.
protocol CgroupDriver: Sendable {
    var version: String { get }
    func slot(_ index: Int) throws -> SlotCgroup
    /// Empties and removes slot cgroups left by an earlier daemon with a bigger pool.
    func removeStale(keeping count: Int)
    /// Removes the (empty) directory that holds the slots' cgroups (daemon shutdown).
    func removeParent()
    /// The directories that hold the slots' cgroups (one per v1 hierarchy).
    var parentDirectories: [String] { get }
}

extension CgroupDriver {
    /// The slot-N names under `dir` with N ≥ count.
    static func staleSlots(in dir: String, keeping count: Int) -> [Int] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        return names.compactMap { $0.hasPrefix("slot-") ? Int($0.dropFirst(5)) : nil }.filter { $0 >= count }
    }
}

enum CgroupDetect {
    /// Pure v2 when /sys/fs/cgroup itself is cgroup2; else v1 (legacy or hybrid).
    static func driver(name: String, socketMemoryBytes: Int64) throws -> CgroupDriver {
        if cs_is_cgroup2("/sys/fs/cgroup") == 1 {
            return try CgroupV2Driver.forDaemon(slotsName: name)
        }
        return try CgroupV1Driver.fromMountinfo(parent: name, socketMemoryBytes: socketMemoryBytes)
    }

    /// Waits, polling, until `check` is true or the time is up.
    static func poll(timeoutMs: Int, _ check: () -> Bool) -> Bool {
        let end = monotonicNs() + UInt64(timeoutMs) * 1_000_000
        var pause: UInt32 = 100
        while true {
            if check() { return true }
            if monotonicNs() >= end { return false }
            usleep(pause)
            pause = min(pause * 2, 5000)
        }
    }

    static func pids(in procsFile: String) -> [pid_t] {
        guard let text = try? FileIO.read(procsFile) else { return [] }
        return text.split(separator: "\n").compactMap { pid_t($0) }
    }
}
