/// Reads typed fields out of a params object, producing -32602 errors that name the field
/// ("params.limits.wall_ms must be a positive integer"). Unknown fields are rejected so that a
/// typo ("limit" for "limits") is reported instead of silently ignored.
public struct ParamReader {
    let object: [String: JSONValue]
    let path: String

    public init(_ params: JSONValue?, path: String = "params") throws(RPCError) {
        switch params {
        case nil: self.object = [:]
        case .object(let o)?: self.object = o
        // Every method takes its params by name: an array, even an empty one, is refused (protocol.md).
        case let other?:
            throw .invalidParams("\(path) must be an object (by-name params), got \(other.typeName)")
        }
        self.path = path
    }

    init(object: [String: JSONValue], path: String) {
        self.object = object
        self.path = path
    }

    func name(_ key: String) -> String { "\(path).\(key)" }

    public func rejectUnknown(allowed: Set<String>) throws(RPCError) {
        if let extra = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            // The name is the client's: cut, so a MiB-long name does not come back as a MiB-long error.
            let shown = extra.count > 64 ? extra.prefix(64) + "…" : extra
            throw .invalidParams("\(name(shown)) is not a known field (known: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    public func string(_ key: String) throws(RPCError) -> String? {
        switch object[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        case let v?: throw .invalidParams("\(name(key)) must be a string, got \(v.typeName)")
        }
    }

    public func requiredString(_ key: String) throws(RPCError) -> String {
        guard let s = try string(key) else { throw .invalidParams("\(name(key)) is required (a string)") }
        return s
    }

    public func bool(_ key: String) throws(RPCError) -> Bool? {
        switch object[key] {
        case nil, .null?: return nil
        case .bool(let b)?: return b
        case let v?: throw .invalidParams("\(name(key)) must be a boolean, got \(v.typeName)")
        }
    }

    /// A positive integer (JSON numbers with no fraction part).
    public func positiveInt(_ key: String) throws(RPCError) -> Int64? {
        switch object[key] {
        case nil, .null?: return nil
        case .int(let i)? where i > 0: return i
        case .double(let d)? where d > 0 && d == d.rounded() && d < 9e18: return Int64(d)
        case let v?:
            let got: String
            switch v {
            case .int(let i): got = "\(i)"
            case .double(let d): got = "\(d)"
            default: got = v.typeName
            }
            throw .invalidParams("\(name(key)) must be a positive integer, got \(got)")
        }
    }

    public func stringArray(_ key: String) throws(RPCError) -> [String]? {
        switch object[key] {
        case nil, .null?: return nil
        case .array(let items)?:
            var out: [String] = []
            for (i, item) in items.enumerated() {
                guard case .string(let s) = item else {
                    throw .invalidParams("\(name(key))[\(i)] must be a string, got \(item.typeName)")
                }
                out.append(s)
            }
            return out
        case let v?: throw .invalidParams("\(name(key)) must be an array of strings, got \(v.typeName)")
        }
    }

    public func nested(_ key: String) throws(RPCError) -> ParamReader? {
        switch object[key] {
        case nil, .null?: return nil
        case .object(let o)?: return ParamReader(object: o, path: name(key))
        case let v?: throw .invalidParams("\(name(key)) must be an object, got \(v.typeName)")
        }
    }
}
