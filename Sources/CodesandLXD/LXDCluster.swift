import CodesandCore
import CodesandProtocol
import Logging
import Synchronization

/// Where the pool's containers go on a clustered LXD (pure: unit-tested). With `lxd.members`,
/// slot i (and the probe container, slot `size`) lives on members[i % n]; without, wherever the
/// cluster's own placement puts it (its `location` is read back).
struct LXDPlacement: Sendable, Hashable {
    var members: [String]

    /// The member `slot`'s container is created on; nil: the cluster chooses.
    func target(_ slot: Int) -> String? { members.isEmpty ? nil : members[slot % members.count] }

    /// `POST` here to create `slot`'s container (`?target=MEMBER` when the member is given).
    func createPath(_ slot: Int) -> String {
        LXDPath.instances() + (target(slot).map { "?target=" + LXDPath.queryValue($0) } ?? "")
    }

    /// Whether a container of an earlier daemon found on `location` may stay `slot`'s. One on
    /// another member than its slot's is replaced: the spread is what the config says (after
    /// `members` changed, or a container moved by hand), not where containers happen to be, which
    /// would leave slots piled on one member for good. It costs one creation, once.
    func accepts(_ location: String, slot: Int) -> Bool {
        guard let target = target(slot) else { return true }
        return location == target
    }
}

/// An instance as `GET /1.0/instances?recursion=1` lists it.
struct LXDInstanceSeen: Sendable, Equatable {
    var status: String
    var location: String

    /// A member that went away: LXD answers the list at once with its instances in status
    /// "Error", while any request naming one of them hangs 10 s and fails (LXD 5.0).
    var unreachable: Bool { status == "Error" }

    /// The pool's instances (names starting with `prefix-`) in a recursive instance list.
    static func parse(_ list: JSONValue, prefix: String) -> [String: LXDInstanceSeen] {
        guard case .array(let items) = list else { return [:] }
        var out: [String: LXDInstanceSeen] = [:]
        for case .object(let o) in items {
            guard let name = o["name"]?.stringValue, name.hasPrefix(prefix + "-") else { continue }
            out[name] = LXDInstanceSeen(status: o["status"]?.stringValue ?? "?", location: o["location"]?.stringValue ?? "")
        }
        return out
    }

    /// Slots whose ready container is no longer running, as of a list taken at `listedAt`: a slot
    /// that became ready after the list was asked for is not judged by it (its restore may show in it).
    static func lost(_ seen: [String: LXDInstanceSeen], readySince: [Int: ContinuousClock.Instant],
                     listedAt: ContinuousClock.Instant, name: (Int) -> String) -> [Int] {
        readySince.filter { slot, since in
            since < listedAt && (seen[name(slot)].map { $0.status != "Running" } ?? true)
        }.keys.sorted()
    }
}

/// Watches a clustered LXD's pool instances (a list every second: one cheap request that LXD
/// answers at once even while a member is gone) so that a member going offline takes only its
/// slots out: their ready containers are reported lost to the pool (broken, retried with its
/// back-off), requests naming them are not sent (they would hang 10 s), and when the member is
/// back (its containers listed again), broken slots retry at once. Nothing on a standalone LXD.
final class LXDClusterWatch: Sendable {
    private struct State {
        var clustered: Bool?
        var seen: [String: LXDInstanceSeen] = [:]
        /// Ready slots, since when (prepare done, no run took them yet).
        var readySince: [Int: ContinuousClock.Instant] = [:]
        var events: WeakEvents?
        var task: Task<Void, Never>?
    }
    private struct WeakEvents { weak var events: (any SlotEvents)? }

    private let client: LXDClient
    private let prefix: String
    private let slots: Int
    private let name: @Sendable (Int) -> String
    private let logger: Logger
    private let state = Mutex(State())
    static let interval = Duration.seconds(1)

    init(client: LXDClient, prefix: String, slots: Int, name: @escaping @Sendable (Int) -> String, logger: Logger) {
        self.client = client
        self.prefix = prefix
        self.slots = slots
        self.name = name
        self.logger = logger
    }

    /// Whether LXD is a cluster (asked once it answers: `GET /1.0`, `environment.server_clustered`).
    func clustered() async throws -> Bool {
        if let known = state.withLock({ $0.clustered }) { return known }
        let meta = try await client.call(.GET, "/1.0", timeout: .seconds(30)).metadata
        let clustered = meta.objectValue?["environment"]?.objectValue?["server_clustered"] == .bool(true)
        state.withLock { $0.clustered = clustered }
        return clustered
    }

    /// nil until LXD answered `clustered()`.
    var isClustered: Bool? { state.withLock { $0.clustered } }

    /// Starts watching (once), when LXD turns out to be clustered.
    func start() {
        state.withLock { s in
            guard s.task == nil else { return }
            s.task = Task { [self] in await watch() }
        }
    }

    func stop() { state.withLock { $0.task?.cancel() } }

    func observe(_ events: any SlotEvents) { state.withLock { $0.events = WeakEvents(events: events) } }

    func slotReady(_ slot: Int) { state.withLock { $0.readySince[slot] = .now } }
    func slotTaken(_ slot: Int) { state.withLock { _ = $0.readySince.removeValue(forKey: slot) } }

    /// Why requests naming `instance` would hang (its member is gone), or nil.
    func unreachable(_ instance: String) -> String? {
        guard let seen = state.withLock({ $0.seen[instance] }), seen.unreachable else { return nil }
        return "container \(instance) is on cluster member \(seen.location), which does not answer (LXD lists it in status Error)"
    }

    /// Where LXD last listed `instance`, or nil.
    func location(_ instance: String) -> String? { state.withLock { $0.seen[instance]?.location } }

    /// Runs `body` (a request naming `instance`), given up with SandboxUnavailable as soon as the
    /// instance's member is seen gone: a request to a member that just went away would hang 10 s.
    func guarding<T: Sendable>(_ instance: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        if let why = unreachable(instance) { throw SandboxUnavailable(why) }
        guard state.withLock({ $0.task != nil }) else { return try await body() }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask { [self] in
                while true {
                    try await Task.sleep(for: .milliseconds(100))
                    if let why = unreachable(instance) { throw SandboxUnavailable(why) }
                }
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw CancellationError() }
            return value
        }
    }

    private func watch() async {
        while !Task.isCancelled {
            do {
                guard try await clustered() else { return }
                try await poll()
            } catch is CancellationError {
                return
            } catch {
                logger.warning("LXD cluster watch: cannot list the instances", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: Self.interval)
        }
    }

    /// One look at the instances: ready slots whose container stopped or whose member is gone are
    /// lost; a member back (an instance of it no longer in Error) wakes the broken slots.
    func poll() async throws {
        let listedAt = ContinuousClock.now
        let list = try await client.call(.GET, LXDPath.instances() + "?recursion=1", timeout: .seconds(10)).metadata
        let seen = LXDInstanceSeen.parse(list, prefix: prefix)
        let (lost, back, events): ([Int], [String], (any SlotEvents)?) = state.withLock { s in
            let back = seen.filter { name, now in s.seen[name]?.unreachable == true && !now.unreachable }.map(\.value.location)
            s.seen = seen
            let lost = LXDInstanceSeen.lost(seen, readySince: s.readySince.filter { $0.key < slots }, listedAt: listedAt, name: name)
            for slot in lost { s.readySince[slot] = nil }
            return (lost, back, s.events?.events)
        }
        for slot in lost {
            let container = name(slot)
            let why = unreachable(container)
                ?? "container \(container) is \(seen[container]?.status ?? "gone") although its slot was ready"
            logger.warning("LXD: a ready container is lost", metadata: ["slot": "\(slot)", "reason": "\(why)"])
            events?.sandboxLost(slot: slot, reason: why)
        }
        if !back.isEmpty {
            logger.notice("LXD: cluster member answers again; broken slots retry", metadata: ["members": "\(Set(back).sorted())"])
            events?.retryBroken()
        }
    }
}
