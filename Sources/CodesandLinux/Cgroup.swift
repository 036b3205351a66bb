import CSandbox
import CodesandCore
import Foundation
import Glibc
import Synchronization

/// The cgroup of one sandbox slot: limits, accounting and the killer.
protocol SlotCgroup: Sendable {
    /// The `cgroup.procs` files a process must write "0" to, to join this slot's cgroup(s).
    var procsFiles: [String] { get }
    /// Descriptors of procsFiles, open for writing (copies of ones the slot holds: opening them by
    /// path for each sandbox was a visible part of the daemon's CPU per run). The caller closes them.
    func joinDescriptors() throws -> [Int32]
    /// Sets memory, pids and CPU limits.
    func apply(limits: LimitSet) throws
    /// Zeroes the memory peak counter.
    func resetCounters() throws
    /// Frees what earlier runs (or a compile stage) left charged to the cgroup: page cache of host
    /// files they read, dentries, inodes. After a sandbox is gone, the next one starts with at most
    /// reclaimedEnough charged besides up to hostFileCacheKept of host files' page cache, which stays
    /// (see below; the kernel reclaims it before it would refuse a limit or a charge): a small memory
    /// limit is always accepted. Returns the bytes still charged.
    @discardableResult func reclaim() -> Int64
    /// Page cache of host files charged here (not the sandboxes' tmpfs pages): the kernel reclaims
    /// it before it fails a charge or refuses a lower limit.
    func hostFileCache() -> Int64
    /// Gives back the kernel's per-CPU batches of charges made ahead for the cgroup (up to 64
    /// pages per CPU), so that a stage's first charges raise its usage and show in its peak (after
    /// a compile: a small program's would all come out of the compiler's batches). Sets the memory
    /// limit a page below what is charged, which makes the kernel drain the batches before anything
    /// else, and sets it back; what it reclaims if that was not enough is a few pages.
    func drainChargeBatches()
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

/// What a slot's cgroup may still hold when its next sandbox is built, without a forced reclaim:
/// the page cache of files an earlier sandbox read first, dentries, kernel objects of dead
/// processes freed a moment later, and the per-CPU batches of charges the kernel keeps ahead (up
/// to 256 KiB per CPU in v1, so a lower mark meant a forced reclaim after nearly every run:
/// ~0.5 ms of the daemon's CPU, measured). None of it is the next run's to see or pay: a stage's
/// peak is counted from what the cgroup held when it began (SandboxRun), and the kernel reclaims
/// page cache before it would fail a charge.
let reclaimedEnough: Int64 = 1 << 20

// Page cache of host files is not forced out of a slot's cgroup (reclaim keeps up to
// hostFileCacheKept; a compile's run starts with the compiler's). Forcing it out evicts it from the host's page cache, for every
// reader: the next sandbox to start the same interpreter or compiler read its files from disk
// again, was charged for them, and so forced them out again. node's start touches ~5.4 MiB of its
// binary first: evicted after each run, a start cost ~8 ms of CPU more (~16%), a g++ hello world
// ~40% more (BENCHMARKS.md, 2026-12-02), besides the forced reclaim's own ~2–3 ms in the daemon.
// Kept, it costs the next run nothing the kernel does not give back at once: it reclaims page
// cache before it fails a charge or refuses a lower limit. A page is charged to one cgroup only,
// so the slots hold no more than the host would cache for the same files. A stage's peak counts
// from what the cgroup held when it began, page cache included: SandboxRun counts back in what of
// that cache the stage pushed out (only a stage that reached its limit can).

/// The most page cache of host files a slot keeps between sandboxes: what the compilers and
/// runtimes of one run read first fits; a run that reads far more (a snippet reading /usr) has it
/// forced out by the daemon after it, off any request's path, rather than left for the slot's next
/// run to push out on its own clock.
let hostFileCacheKept: Int64 = 64 << 20

/// The limits a slot's cgroup holds, as last written: its memory and pids limits (the rest, the
/// CPU quota and swap, are the same for every sandbox: written once). A slot's next sandbox
/// usually wants what the last left, and each file not written is an open, write and close saved
/// (a lower memory limit's write may also reclaim). A part is unknown (nil) while its write is
/// under way or after one failed, and is written again then.
final class AppliedLimits: Sendable {
    private struct Held { var fixed: Bool?, memory: Int64?, pids: Int64? }
    private let value = Mutex(Held())

    /// Writes what of `limits` the cgroup does not hold yet: `fixed` once, `memory` and `pids`
    /// when their value changes.
    func apply(_ limits: LimitSet, fixed: () throws -> Void, memory: (Int64) throws -> Void,
               pids: (Int64) throws -> Void) throws {
        let held = value.withLock { $0 }
        if held.fixed == nil { try record(\.fixed, true, fixed) }
        if held.memory != limits.memoryBytes { try record(\.memory, limits.memoryBytes) { try memory(limits.memoryBytes) } }
        if held.pids != limits.pids { try record(\.pids, limits.pids) { try pids(limits.pids) } }
    }

    private func record<T>(_ part: WritableKeyPath<Held, T?>, _ new: T, _ write: () throws -> Void) throws {
        value.withLock { $0[keyPath: part] = nil }
        try write()
        value.withLock { $0[keyPath: part] = new }
    }
}

extension LimitSet {
    /// The same limits for a slot's cgroup (memory, pids): a sandbox made with `self` serves a
    /// stage that wants `other` without a cgroup write. The others (time, output) are the
    /// daemon's and the job's, not the cgroup's.
    func sameInCgroup(as other: LimitSet) -> Bool { memoryBytes == other.memoryBytes && pids == other.pids }
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
