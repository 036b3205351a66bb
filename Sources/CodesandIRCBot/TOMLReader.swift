import TOMLKit

/// A config value that is missing, of the wrong type or out of range; `key` is its dotted path.
public struct BotConfigError: Error, Sendable, CustomStringConvertible {
    public let key: String
    public let problem: String

    public init(key: String, problem: String) {
        self.key = key
        self.problem = problem
    }

    public var description: String { key.isEmpty ? problem : "\(key): \(problem)" }
}

/// Reads one TOML table key by key, each with its type and range checked, and remembers which keys
/// it read, so `finish()` can refuse the ones it does not know (a typo is an error, not a default).
struct TOMLReader {
    let table: TOMLTable
    let path: String
    private var known: Set<String> = []

    init(_ table: TOMLTable, path: String = "") {
        self.table = table
        self.path = path
    }

    func key(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    private mutating func value(_ name: String) -> (any TOMLValueConvertible)? {
        known.insert(name)
        guard table.contains(key: name) else { return nil }
        let v: (any TOMLValueConvertible)? = table[name]
        return v
    }

    private func wrong(_ name: String, _ want: String, _ got: any TOMLValueConvertible) -> BotConfigError {
        BotConfigError(key: key(name), problem: "must be \(want), got \(Self.typeName(got.type))")
    }

    static func typeName(_ type: TOMLType) -> String {
        switch type {
        case .table: return "a table"
        case .array: return "an array"
        case .string: return "a string"
        case .int: return "an integer"
        case .double: return "a floating-point number"
        case .bool: return "a boolean"
        case .date, .time, .dateTime: return "a date or time"
        }
    }

    mutating func string(_ name: String) throws(BotConfigError) -> String? {
        guard let v = value(name) else { return nil }
        guard let s = v.string else { throw wrong(name, "a string", v) }
        return s
    }

    mutating func string(_ name: String, default d: String) throws(BotConfigError) -> String {
        try string(name) ?? d
    }

    mutating func int(_ name: String, default d: Int, in range: ClosedRange<Int>) throws(BotConfigError) -> Int {
        guard let v = value(name) else { return d }
        guard let i = v.int else { throw wrong(name, "an integer", v) }
        guard range.contains(i) else {
            throw BotConfigError(key: key(name), problem: "must be \(range.lowerBound)…\(range.upperBound), got \(i)")
        }
        return i
    }

    mutating func number(_ name: String, default d: Double, in range: ClosedRange<Double>) throws(BotConfigError) -> Double {
        guard let v = value(name) else { return d }
        guard let x = v.double ?? v.int.map(Double.init) else { throw wrong(name, "a number", v) }
        guard range.contains(x) else {
            throw BotConfigError(key: key(name), problem: "must be \(range.lowerBound)…\(range.upperBound), got \(x)")
        }
        return x
    }

    mutating func bool(_ name: String, default d: Bool) throws(BotConfigError) -> Bool {
        guard let v = value(name) else { return d }
        guard let b = v.bool else { throw wrong(name, "true or false", v) }
        return b
    }

    mutating func strings(_ name: String, default d: [String]) throws(BotConfigError) -> [String] {
        guard let v = value(name) else { return d }
        guard let array = v.array else { throw wrong(name, "an array of strings", v) }
        var out: [String] = []
        for (i, item) in array.enumerated() {
            guard let s = item.string else {
                throw BotConfigError(key: "\(key(name))[\(i)]", problem: "must be a string, got \(Self.typeName(item.type))")
            }
            out.append(s)
        }
        return out
    }

    mutating func table(_ name: String) throws(BotConfigError) -> TOMLReader? {
        guard let v = value(name) else { return nil }
        guard let t = v.table else { throw wrong(name, "a table", v) }
        return TOMLReader(t, path: key(name))
    }

    /// An array of tables (`[[name]]`).
    mutating func tables(_ name: String) throws(BotConfigError) -> [TOMLReader]? {
        guard let v = value(name) else { return nil }
        guard let array = v.array else { throw wrong(name, "an array of tables ([[\(name)]])", v) }
        var out: [TOMLReader] = []
        for (i, item) in array.enumerated() {
            guard let t = item.table else {
                throw BotConfigError(key: "\(key(name))[\(i)]", problem: "must be a table, got \(Self.typeName(item.type))")
            }
            out.append(TOMLReader(t, path: "\(key(name))[\(i)]"))
        }
        return out
    }

    /// Every key of the table, for tables whose keys are data (the triggers).
    var allKeys: [String] { table.keys }

    mutating func markAllKnown() {
        known.formUnion(table.keys)
    }

    /// Refuses keys nothing read.
    func finish() throws(BotConfigError) {
        if let unknown = table.keys.sorted().first(where: { !known.contains($0) }) {
            throw BotConfigError(key: key(unknown), problem: "unknown key")
        }
    }
}
