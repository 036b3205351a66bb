import CodesandProtocol
import Logging
import Synchronization

/// The pool's containers, PREFIX-0 … PREFIX-(n-1): created once from the spec (or adopted from an
/// earlier daemon when made from the same spec and holding the `clean` snapshot), and restored to
/// `clean` before each use — which stops every process, brings back the snapshot's filesystem and
/// config, and mounts fresh tmpfs.
final class LXDContainerPool: Sendable {
    let client: LXDClient
    /// The slots' count; container `size` is the probe container (PREFIX-probe), for the languages' probes.
    let size: Int
    private let logger: Logger
    /// The spec containers are made from now, and per container whether it is known to match it
    /// (adopted or created by this daemon). A reload with another spec forgets them all: each is
    /// replaced at its next prepare.
    private let state: Mutex<(spec: LXDInstanceSpec, known: [Bool])>
    let prefix: String
    /// On a cluster: which member each container goes on, where each is (as created or adopted),
    /// and whose members answer.
    let placement: LXDPlacement
    private let locations: Mutex<[String?]>
    let watch: LXDClusterWatch
    /// After a reload: the digests of the specs served before (their containers may serve on until
    /// replaced), whether a slot's container is being replaced now (one at a time, so the pool never
    /// empties while every container is remade), and how long each replacement took (for tests).
    private let reload = Mutex<(served: Set<String>, replacing: Bool, replacements: [Replacement])>(([], false, []))

    /// A container replaced after a reload: when, and for how long its slot was out for it.
    struct Replacement: Sendable {
        var slot: Int
        var start: ContinuousClock.Instant
        var end: ContinuousClock.Instant
        var ms: Int64 { milliseconds(from: start, to: end) }
    }

    init(client: LXDClient, spec: LXDInstanceSpec, size: Int, logger: Logger) {
        self.client = client
        self.size = size
        self.logger = logger
        self.prefix = spec.lxd.prefix
        self.state = Mutex((spec, Array(repeating: false, count: size + 1)))
        placement = LXDPlacement(members: spec.lxd.members)
        locations = Mutex(Array(repeating: nil, count: size + 1))
        let prefix = spec.lxd.prefix
        watch = LXDClusterWatch(client: client, prefix: prefix, slots: size,
                                name: { $0 == size ? "\(prefix)-probe" : "\(prefix)-\($0)" }, logger: logger)
    }

    /// Per slot, the cluster member its container is on (or goes on); nil on a standalone LXD.
    func slotMembers() -> [String?]? {
        guard watch.isClustered == true else { return nil }
        let known = locations.withLock { $0 }
        return (0..<size).map { known[$0] ?? watch.location(name($0)) ?? placement.target($0) }
    }

    var spec: LXDInstanceSpec { state.withLock { $0.spec } }
    /// True while `slot`'s container is not known to be of the current spec (after a reload: not replaced yet).
    func isOutdated(_ slot: Int) -> Bool { state.withLock { !$0.known[slot] } }
    /// The replacements done after reloads, oldest first.
    var replacements: [Replacement] { reload.withLock { $0.replacements } }
    var probeIndex: Int { size }

    func name(_ slot: Int) -> String { slot == size ? "\(prefix)-probe" : "\(prefix)-\(slot)" }

    /// Containers are made from `spec` from now on; true if it differs from the one before.
    @discardableResult
    func update(_ spec: LXDInstanceSpec) -> Bool {
        state.withLock { s in
            guard s.spec.digest != spec.digest else { return false }
            let before = s.spec.digest
            reload.withLock { _ = $0.served.insert(before) }
            s.spec = spec
            s.known = Array(repeating: false, count: size + 1)
            return true
        }
    }

    /// Makes `slot`'s container clean and running; returns its run control (its host cgroups, or
    /// LXD's API for a remote LXD: LXDRunControl). A failure forgets the
    /// container: the next attempt looks at it again and replaces it if it is broken (its snapshot
    /// deleted, its config changed by hand).
    func makeReady(_ slot: Int) async throws -> any LXDRunControl {
        do {
            return try await restoreOrCreate(slot)
        } catch {
            state.withLock { $0.known[slot] = false }
            throw onMember(slot, error)
        }
    }

    /// On a cluster, `error` naming the member of `slot`'s container: LXD's own errors for a member
    /// that is coming back ("Missing event connection ...") do not say which one it is.
    private func onMember(_ slot: Int, _ error: any Error) -> any Error {
        guard !(error is CancellationError), let member = slotMembers()?[slot] ?? nil,
              !"\(error)".contains("member \(member)") else { return error }
        return LXDError(what: "cluster member \(member)", message: "\(error)")
    }

    private func restoreOrCreate(_ slot: Int) async throws -> any LXDRunControl {
        let name = name(slot)
        if let why = watch.unreachable(name) { throw LXDError(what: "container \(name)", message: why) }
        let fresh = try await ensure(slot)
        if !fresh { try await restore(name) }
        var (status, pid) = try await state(name)
        if status != "Running" {
            try await client.run(.PUT, LXDPath.state(name), json: .object(["action": .string("start")]), timeout: .seconds(60))
            (status, pid) = try await state(name)
        }
        guard status == "Running", pid > 0 else {
            throw LXDError(what: "container \(name)", message: "not running after its restore (status \(status), init pid \(pid))")
        }
        // A remote LXD's pid and cgroups are another machine's.
        if client.transport.isRemote { return LXDRemoteControl(client: client, container: name, spec: spec) }
        guard let cgroup = LXDHostCgroup.of(pid: pid) else {
            throw LXDError(what: "container \(name)", message: "its init (pid \(pid)) has no cgroups on this host")
        }
        guard cgroup.execDir != nil else {
            throw LXDError(what: "container \(name)", message: "the host has no cgroup2 hierarchy (/sys/fs/cgroup/unified or a "
                           + "v2 /sys/fs/cgroup), through which codesand kills a run's processes: the LXD backend needs one")
        }
        return cgroup
    }

    /// Back to the `clean` snapshot. LXD refuses while another operation on the container runs (a
    /// forced stop of the run before, still finishing): asked again for up to 10 s.
    private func restore(_ name: String) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            do {
                try await client.run(.PUT, LXDPath.instance(name), json: .object(["restore": .string(LXDInstanceSpec.snapshot)]),
                                     timeout: .seconds(120))
                return
            } catch let e as LXDError where e.message.contains("is busy running") && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// The container exists and matches the spec: adopted, or (re)created. True when it was just
    /// created (it is clean: no restore needed).
    private func ensure(_ slot: Int) async throws -> Bool {
        let spec = self.spec
        if state.withLock({ $0.known[slot] && $0.spec.digest == spec.digest }) { return false }
        let name = name(slot)
        let clustered = try await watch.clustered()
        if !placement.members.isEmpty && !clustered {
            throw LXDError(what: "lxd.members", message: "LXD at \(client.transport.address) is not clustered: leave lxd.members empty")
        }
        do {
            let meta = try await client.call(.GET, LXDPath.instance(name)).metadata
            let digest = meta.objectValue?["config"]?.objectValue?[LXDInstanceSpec.specKey]?.stringValue
            let location = meta.objectValue?["location"]?.stringValue ?? ""
            let hasSnapshot = (try? await client.call(.GET, LXDPath.snapshots(name) + "/" + LXDInstanceSpec.snapshot)) != nil
            let placed = !clustered || placement.accepts(location, slot: slot)
            if digest == spec.digest && hasSnapshot && placed {
                logger.info("adopted the container of an earlier daemon", metadata: ["container": "\(name)", "member": "\(location)"])
                if clustered { locations.withLock { $0[slot] = location } }
                markKnown(slot, spec)
                return false
            }
            if slot < size, placed, hasSnapshot, let digest, reload.withLock({ $0.served.contains(digest) }) {
                return try await replaceAfterReload(slot, name, spec)
            }
            logger.notice(placed ? "replacing a container made from another spec" : "replacing a container on another member than its slot's",
                          metadata: ["container": "\(name)", "member": "\(location)", "slot_member": "\(placement.target(slot) ?? "-")"])
            try await delete(name)
        } catch let e as LXDError where e.isNotFound {
        }
        try await create(name, slot, spec)
        if clustered { await recordLocation(slot, name) }
        markKnown(slot, spec)
        return true
    }

    /// Where the cluster put `slot`'s new container (its `location`; the target asked for if LXD does not say).
    private func recordLocation(_ slot: Int, _ name: String) async {
        let location = try? await client.call(.GET, LXDPath.instance(name)).metadata.objectValue?["location"]?.stringValue
        locations.withLock { $0[slot] = location ?? placement.target(slot) }
    }

    /// A slot's container of a spec served before a reload: replaced now unless another one is being
    /// replaced — then it is restored and serves on as it was (a run in it sees the old image whole),
    /// still outdated, and is replaced at a later prepare. So at most one slot at a time is out for a
    /// replacement (seconds for a big image on a `dir` pool), and the pool never empties for the reload.
    private func replaceAfterReload(_ slot: Int, _ name: String, _ spec: LXDInstanceSpec) async throws -> Bool {
        let mine = reload.withLock { r in
            if r.replacing { return false }
            r.replacing = true
            return true
        }
        guard mine else { return false }
        defer { reload.withLock { $0.replacing = false } }
        let start = ContinuousClock.now
        logger.notice("replacing a container after a reload", metadata: ["container": "\(name)"])
        try await delete(name)
        try await create(name, slot, spec)
        if (try? await watch.clustered()) == true { await recordLocation(slot, name) }
        markKnown(slot, spec)
        let done = Replacement(slot: slot, start: start, end: .now)
        reload.withLock { $0.replacements.append(done) }
        return true
    }

    private func markKnown(_ slot: Int, _ spec: LXDInstanceSpec) {
        state.withLock { s in if s.spec.digest == spec.digest { s.known[slot] = true } }
    }

    /// Created from the spec, snapshotted while stopped (the snapshot holds the config, tmpfs mounts
    /// included), then started.
    private func create(_ name: String, _ slot: Int, _ spec: LXDInstanceSpec) async throws {
        let start = ContinuousClock.now
        try await client.run(.POST, placement.createPath(slot), json: spec.createBody(name: name), timeout: .seconds(600))
        try await client.run(.POST, LXDPath.snapshots(name),
                             json: .object(["name": .string(LXDInstanceSpec.snapshot), "stateful": .bool(false)]))
        try await client.run(.PUT, LXDPath.state(name), json: .object(["action": .string("start")]), timeout: .seconds(60))
        logger.info("created a container", metadata: ["container": "\(name)", "ms": "\(milliseconds(since: start))"])
    }

    /// Stopped at once and deleted (no error if it is not there).
    func delete(_ name: String) async throws {
        do {
            try await client.run(.PUT, LXDPath.state(name), json: .object(["action": .string("stop"), "force": .bool(true)]),
                                 timeout: .seconds(60))
        } catch let e as LXDError where e.isNotFound {
            return
        } catch {
            // Already stopped: LXD refuses to stop it again; the delete below says if something is wrong.
        }
        do {
            try await client.run(.DELETE, LXDPath.instance(name), timeout: .seconds(120))
        } catch let e as LXDError where e.isNotFound {
        }
    }

    /// Deletes containers with the pool's prefix that are not the pool's (an earlier, larger pool):
    /// nothing is left that this daemon does not own.
    func removeStrays() async {
        guard let list = try? await client.call(.GET, LXDPath.instances()).metadata, case .array(let urls) = list else { return }
        let mine = Set((0...size).map(name))
        for case .string(let url) in urls {
            guard let last = url.split(separator: "?").first?.split(separator: "/").last else { continue }
            let name = String(last).percentDecoded
            guard name.hasPrefix(prefix + "-"), !mine.contains(name), Int(name.dropFirst(prefix.count + 1)) != nil else { continue }
            logger.notice("deleting a container of an earlier, larger pool", metadata: ["container": "\(name)"])
            try? await delete(name)
        }
    }

    /// The instance's status ("Running", "Stopped", …) and its init's host pid.
    func state(_ name: String) async throws -> (String, Int32) {
        let meta = try await client.call(.GET, LXDPath.state(name)).metadata.objectValue ?? [:]
        var pid: Int32 = 0
        if case .int(let p) = meta["pid"] { pid = Int32(truncatingIfNeeded: p) }
        return (meta["status"]?.stringValue ?? "?", pid)
    }
}

extension String {
    /// "%2D" → "-": instance names in LXD's URLs.
    var percentDecoded: String {
        var out: [UInt8] = []
        var bytes = Array(utf8)[...]
        while let b = bytes.popFirst() {
            if b == UInt8(ascii: "%"), bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) {
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Whole milliseconds from `start` to now.
func milliseconds(since start: ContinuousClock.Instant) -> Int64 { milliseconds(from: start, to: .now) }

func milliseconds(from start: ContinuousClock.Instant, to end: ContinuousClock.Instant) -> Int64 {
    let d = (end - start).components
    return d.seconds * 1000 + d.attoseconds / 1_000_000_000_000_000
}
