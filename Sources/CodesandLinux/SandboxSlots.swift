import CodesandCore
import Glibc
import Logging
import Synchronization

/// The pool's slots on this host: each has its cgroup, at most one ready sandbox (built, waiting
/// for a run) and the used ones (their run is over and their init killed or waiting to be, but
/// they are not torn down yet, so the reply does not wait for that). A sandbox is torn down (its init reaped, its
/// cgroup emptied, its pipes closed) here only, in `tearDown`: before the slot's next sandbox,
/// when a run needs the slot's cgroup emptied at once, and at shutdown.
final class SandboxSlots: @unchecked Sendable {  // sandboxes are moved under `state`'s lock; one user each at a time
    /// One per slot, and one more (the last) for probes such as language versions.
    let cgroups: [SlotCgroup]
    private let uidBase: UInt32
    private let defaultLimits: LimitSet
    private let logger: Logger
    private let state: Mutex<(ready: [ReadySandbox?], used: [[SandboxInstance]], stopped: Bool)>
    /// Each slot's network namespace, kept from its last sandbox for its next (an fd; see
    /// SandboxInstance.networkUntouched), or nil: the next sandbox gets a new one.
    private let keptNetns: Mutex<[Int32?]>
    /// Each slot's base mount namespace (its read-only root, built by one of its sandboxes), with
    /// the layout it was built from and when: a base serves the slot's sandboxes of that layout for
    /// `baseLifetime`, then one is built anew (an overlay long mounted may miss what the host
    /// installs meanwhile under its lower directories).
    private let bases: Mutex<[KeptBase?]>
    static let baseLifetime: Duration = .seconds(30)
    /// The oldest base a run may use: its overlays keep what earlier runs looked up, so a ready
    /// sandbox that waited long would show the host's files as they were then. Longer than
    /// baseLifetime, so that a run after a pause of a minute still finds its sandbox (a python3 run
    /// on a new plain sandbox costs ~20 ms more); a ready sandbox older is rebuilt at the run.
    static let oldestBaseForARun: Duration = .seconds(600)

    /// A base built then may still serve new sandboxes.
    static func isYoung(_ born: ContinuousClock.Instant) -> Bool { born.duration(to: .now) < baseLifetime }
    /// A ready sandbox on a base built then may still serve a run.
    static func mayServeARun(_ born: ContinuousClock.Instant) -> Bool { born.duration(to: .now) < oldestBaseForARun }

    private struct KeptBase {
        let fd: Int32
        let layout: SandboxLayout
        let born: ContinuousClock.Instant
    }

    init(cgroups: [SlotCgroup], uidBase: UInt32, defaultLimits: LimitSet, logger: Logger) {
        self.cgroups = cgroups
        self.uidBase = uidBase
        self.defaultLimits = defaultLimits
        self.logger = logger
        state = Mutex((Array(repeating: nil, count: cgroups.count), Array(repeating: [], count: cgroups.count), false))
        keptNetns = Mutex(Array(repeating: nil, count: cgroups.count))
        bases = Mutex(Array(repeating: nil, count: cgroups.count))
    }

    /// Builds a sandbox in `slot`'s cgroup from `layout`; with `prestart`, its interpreter started
    /// and waiting (a fork of the language's zygote, if it has one; none if its launcher cannot
    /// be used). Any other sandbox's init (plain, or one that execs its interpreter) is cloned by
    /// the plain spawner, or any zygote that runs (a small process: its clone costs less than a
    /// clone of the daemon), else by the daemon.
    func spawn(_ slot: Int, layout: SandboxLayout, prestart: PrestartSpec? = nil) throws -> SandboxInstance {
        var prestart = prestart.flatMap(layout.launchers.resolve)
        let own = prestart.flatMap { layout.zygotes.zygote(for: $0) }
        if own == nil && prestart?.onlyAsZygote == true { prestart = nil }  // bash's: only its zygote can start it
        let zygote = own ?? layout.zygotes.plainSpawner
        // The new init has its own copy (or a new namespace): ours goes, whatever happens.
        let netns = keptNetns.withLock { kept -> Int32? in
            defer { kept[slot] = nil }
            guard let fd = kept[slot] else { return nil }
            if layout.config.keepNetworkNamespace { return fd }
            close(fd)  // sandbox.keep_network_namespace = false: a new one each time
            return nil
        }
        defer { if let netns { close(netns) } }
        let (base, born) = currentBase(slot, layout: layout) ?? (nil, .now)
        defer { if let base { close(base) } }
        do {
            let instance = try SandboxInstance.spawn(layout: layout, slot: slot, uid: uidBase + UInt32(slot),
                                                     cgroup: cgroups[slot], limits: prestart?.limits ?? defaultLimits, prestart: prestart,
                                                     zygote: zygote, logger: logger, joinNetns: netns, joinBase: base)
            instance.baseBorn = born
            if let built = instance.takeBuiltBase() {
                keepBase(slot, KeptBase(fd: built, layout: layout, born: .now))
            }
            return instance
        } catch {
            if base != nil { keepBase(slot, nil) }  // it may be what failed: the next one builds its own
            throw error
        }
    }

    /// A copy of the slot's base for a sandbox of `layout`, if it has one of that layout young
    /// enough, and when it was built.
    private func currentBase(_ slot: Int, layout: SandboxLayout) -> (Int32, ContinuousClock.Instant)? {
        bases.withLock { b -> (Int32, ContinuousClock.Instant)? in
            guard let kept = b[slot] else { return nil }
            // Not once its sources are gone (an image moved away): the base's mounts would still
            // show them, but the layout's sandboxes must fail with the cause, as a new build does.
            if kept.layout === layout && Self.isYoung(kept.born) && layout.missingSource() == nil {
                let copy = fcntl(kept.fd, F_DUPFD_CLOEXEC, 3)
                return copy >= 0 ? (copy, kept.born) : nil
            }
            close(kept.fd)
            b[slot] = nil
            return nil
        }
    }

    private func keepBase(_ slot: Int, _ base: KeptBase?) {
        bases.withLock { b in
            if let old = b[slot] { close(old.fd) }
            b[slot] = state.withLock({ $0.stopped }) ? nil : base
            if b[slot] == nil, let base { close(base.fd) }
        }
    }

    /// Takes the slot's ready sandbox for a run, if it has one.
    func take(_ slot: Int) -> ReadySandbox? {
        state.withLock { s in
            defer { s.ready[slot] = nil }
            return s.ready[slot]
        }
    }

    /// Makes `sandbox` the slot's ready one. False after shutdown: then it is torn down instead.
    func setReady(_ slot: Int, _ sandbox: ReadySandbox) -> Bool {
        let kept = state.withLock { s -> Bool in
            guard !s.stopped else { return false }
            s.ready[slot] = sandbox
            return true
        }
        if !kept { tearDown([sandbox.instance]) }
        return kept
    }

    /// A run's end: its sandbox, its init killed (or, `killingInit` false, left to the teardown),
    /// stays in the slot until the slot is cleared (after shutdown, nobody would: it is torn down now).
    func giveBack(_ slot: Int, _ sandbox: SandboxInstance, killingInit: Bool = true) {
        if killingInit { sandbox.killInit() }
        let later = state.withLock { s -> Bool in
            guard !s.stopped else { return false }
            s.used[slot].append(sandbox)
            return true
        }
        if !later { tearDown([sandbox]) }
    }

    /// Tears down whatever the slot holds and frees what its runs left charged to its cgroup: the
    /// cgroup is empty and holds little but host files' page cache, for a sandbox's peak to be its own
    /// and a small limit to fit (SlotCgroup.reclaim).
    func clear(_ slot: Int) {
        tearDown(state.withLock { s in
            defer { (s.ready[slot], s.used[slot]) = (nil, []) }
            return [s.ready[slot]?.instance].compactMap { $0 } + s.used[slot]
        }, slot: slot)
        cgroups[slot].reclaim()
    }

    /// Each slot's ready sandbox's init, if it has one.
    var readyInits: [pid_t?] {
        state.withLock { s in s.ready.map { $0?.instance.initPID } }
    }

    /// The slots whose sandbox is ready now.
    var readySlots: Set<Int> {
        state.withLock { s in Set(s.ready.indices.filter { s.ready[$0] != nil }) }
    }

    /// Daemon shutdown: every sandbox is torn down, and none is kept from now on.
    func stop() {
        tearDown(state.withLock { s in
            defer { s = (s.ready.map { _ in nil }, s.used.map { _ in [] }, true) }
            return s.ready.compactMap { $0?.instance } + s.used.flatMap { $0 }
        })
        keptNetns.withLock { kept in
            for case let fd? in kept { close(fd) }
            kept = kept.map { _ in nil }
        }
        for slot in bases.withLock({ $0.indices }) { keepBase(slot, nil) }
    }

    /// The teardown, the one place a sandbox is destroyed (bar a spawn that failed). With `slot`,
    /// a network namespace no run touched is kept for the slot's next sandbox, once every process
    /// of this one is gone.
    private func tearDown(_ sandboxes: [SandboxInstance], slot: Int? = nil) {
        for sandbox in sandboxes {
            let netns = slot != nil && sandbox.networkUntouched ? sandbox.takeNetns() : nil
            sandbox.destroy()
            guard let slot, let netns else { continue }
            let kept = keptNetns.withLock { kept -> Bool in
                guard kept[slot] == nil, !state.withLock({ $0.stopped }) else { return false }
                kept[slot] = netns
                return true
            }
            if !kept { close(netns) }
        }
    }
}

/// A prepared sandbox moving between threads; only one owner uses it at a time.
final class ReadySandbox: Sendable {
    let instance: SandboxInstance
    /// What it was built from: a run uses it only if that is still the current layout.
    let layout: SandboxLayout
    init(_ instance: SandboxInstance, layout: SandboxLayout) {
        self.instance = instance
        self.layout = layout
    }
}
