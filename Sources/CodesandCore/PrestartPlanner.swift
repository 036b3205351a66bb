import Synchronization

/// Decides which interpreter each slot starts in advance, following demand: the languages of the
/// recent requests share the pool in proportion, the latest weighing most (requests for languages
/// that cannot be pre-started count for plain slots, which start nothing and so spend no CPU on an
/// unused interpreter).
public final class PrestartPlanner: Sendable {
    public static let window = 24  // short: a bot that switches languages gets its interpreter within a few requests
    /// Each request weighs this much of the one after it: ten requests of a new language take ~80%
    /// of the pool from a window full of another (equal weights gave them 42%, and most of a switch's
    /// first runs found the old language waiting).
    public static let decay = 0.85

    private struct State {
        var recent: [String] = []          // language names of the latest requests, oldest first
        var assigned: [String?]            // per slot: the language it was prepared for
        var specs: [String: PrestartSpec] = [:]
    }

    private let state: Mutex<State>

    public init(size: Int) {
        state = Mutex(State(assigned: Array(repeating: nil, count: size)))
    }

    /// The pre-startable languages (at start and after a reload).
    public func update(specs: [PrestartSpec]) {
        state.withLock { $0.specs = Dictionary(uniqueKeysWithValues: specs.map { ($0.language, $0) }) }
    }

    public func noteRequest(language: String) {
        state.withLock { s in
            s.recent.append(language)
            if s.recent.count > Self.window { s.recent.removeFirst(s.recent.count - Self.window) }
        }
    }

    /// The language `slot` is prepared for now, if any.
    public func language(of slot: Int) -> String? { state.withLock { $0.assigned[slot] } }

    /// What `slot` should start as it is prepared again.
    public func choose(for slot: Int) -> PrestartSpec? {
        state.withLock { s in
            s.assigned[slot] = nil
            guard !s.specs.isEmpty else { return nil }
            let plain = "\u{0}plain"
            var demand: [String: Double] = [:], weight = 1.0
            for lang in s.recent.reversed() {
                demand[s.specs[lang] == nil ? plain : lang, default: 0] += weight
                weight *= Self.decay
            }
            if demand.isEmpty {  // no requests yet: bots mostly ask for Python
                demand[s.specs["python3"] != nil ? "python3" : s.specs.keys.sorted()[0]] = 1
            }
            let total = demand.values.reduce(0, +)
            let size = Double(s.assigned.count)
            var current: [String: Double] = [:]  // the other slots' (this one is being chosen)
            for (i, a) in s.assigned.enumerated() where i != slot { current[a ?? plain, default: 0] += 1 }
            // The choice furthest below its share of the pool.
            let pick = demand.keys.sorted().max { a, b in
                demand[a]! / total * size - current[a, default: 0] < demand[b]! / total * size - current[b, default: 0]
            }!
            guard let spec = s.specs[pick] else { return nil }
            s.assigned[slot] = pick
            return spec
        }
    }
}
