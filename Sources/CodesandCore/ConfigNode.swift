import CodesandProtocol

/// A table of the parsed config with its dotted path, for typed reads whose errors name the key.
struct ConfigNode {
    let value: [String: JSONValue]
    let path: String

    var keys: [String] { Array(value.keys) }

    func key(_ k: String) -> String { path.isEmpty ? k : "\(path).\(k)" }

    func has(_ k: String) -> Bool { value[k] != nil }

    func raw(_ k: String) throws -> JSONValue {
        guard let v = value[k] else { throw ConfigError(key: key(k), problem: "is missing") }
        return v
    }

    func table(_ k: String) throws -> ConfigNode {
        guard case .object(let o) = try raw(k) else {
            throw ConfigError(key: key(k), problem: "must be a table, got \(try raw(k).typeName)")
        }
        return ConfigNode(value: o, path: key(k))
    }

    func string(_ k: String) throws -> String {
        guard case .string(let s) = try raw(k) else {
            throw ConfigError(key: key(k), problem: "must be a string, got \(try raw(k).typeName)")
        }
        return s
    }

    func path(_ k: String) throws -> String {
        let s = try string(k)
        guard s.hasPrefix("/"), !s.split(separator: "/").contains("..") else {
            throw ConfigError(key: key(k), problem: "must be an absolute path without \"..\", got \"\(s)\"")
        }
        return s
    }

    func paths(_ k: String) throws -> [String] {
        let list = try stringArray(k)
        for s in list where !s.hasPrefix("/") || s.split(separator: "/").contains("..") || s == "/" {
            throw ConfigError(key: key(k), problem: "\"\(s)\" must be an absolute path below / without \"..\"")
        }
        return list
    }

    func bool(_ k: String) throws -> Bool {
        guard case .bool(let b) = try raw(k) else {
            throw ConfigError(key: key(k), problem: "must be true or false, got \(try raw(k).typeName)")
        }
        return b
    }

    func int(_ k: String, min: Int64, max: Int64) throws -> Int64 {
        guard case .int(let i) = try raw(k) else {
            throw ConfigError(key: key(k), problem: "must be an integer, got \(try raw(k).typeName)")
        }
        guard i >= min, i <= max else {
            throw ConfigError(key: key(k), problem: "must be between \(min) and \(max), got \(i)")
        }
        return i
    }

    func stringArray(_ k: String, default fallback: [String]? = nil) throws -> [String] {
        if let fallback, value[k] == nil { return fallback }
        guard case .array(let items) = try raw(k) else {
            throw ConfigError(key: key(k), problem: "must be an array of strings, got \(try raw(k).typeName)")
        }
        return try items.enumerated().map { i, item in
            guard case .string(let s) = item else {
                throw ConfigError(key: "\(key(k))[\(i)]", problem: "must be a string, got \(item.typeName)")
            }
            return s
        }
    }

    func stringMap(_ k: String) throws -> [String: String] {
        guard case .object(let o) = try raw(k) else {
            throw ConfigError(key: key(k), problem: "must be a table of strings, got \(try raw(k).typeName)")
        }
        var out: [String: String] = [:]
        for (name, v) in o {
            guard case .string(let s) = v else {
                throw ConfigError(key: "\(key(k)).\(name)", problem: "must be a string, got \(v.typeName)")
            }
            out[name] = s
        }
        return out
    }
}
