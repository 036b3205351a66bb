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

    init(cgroups: [SlotCgroup], uidBase: UInt32, defaultLimits: LimitSet, logger: Logger) {
        self.cgroups = cgroups
        self.uidBase = uidBase
        self.defaultLimits = defaultLimits
        self.logger = logger
        state = Mutex((Array(repeating: nil, count: cgroups.count), Array(repeating: [], count: cgroups.count), false))
    }

    /// Builds a sandbox in `slot`'s cgroup from `layout`; with `prestart`, its interpreter started
    /// and waiting (a fork of the language's zygote, if it has one; none if its launcher cannot
    /// be used). A plain sandbox's init is cloned by the plain spawner, or any zygote that runs (a
    /// small process: its clone costs less than a clone of the daemon), else by the daemon.
    func spawn(_ slot: Int, layout: SandboxLayout, prestart: PrestartSpec? = nil) throws -> SandboxInstance {
        let prestart = prestart.flatMap(layout.launchers.resolve)
        let zygote = prestart.map { layout.zygotes.zygote(for: $0) } ?? layout.zygotes.plainSpawner
        return try SandboxInstance.spawn(layout: layout, slot: slot, uid: uidBase + UInt32(slot), cgroup: cgroups[slot],
                                  limits: defaultLimits, prestart: prestart, zygote: zygote, logger: logger)
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
    /// cgroup is empty and at zero, for a sandbox's peak to be its own and a small limit to fit.
    func clear(_ slot: Int) {
        tearDown(state.withLock { s in
            defer { (s.ready[slot], s.used[slot]) = (nil, []) }
            return [s.ready[slot]?.instance].compactMap { $0 } + s.used[slot]
        })
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
    }

    /// The teardown, the one place a sandbox is destroyed (bar a spawn that failed).
    private func tearDown(_ sandboxes: [SandboxInstance]) {
        for sandbox in sandboxes { sandbox.destroy() }
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
