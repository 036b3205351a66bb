/// The request paths of LXD's API, built in one place (pure: unit-tested without LXD).
enum LXDPath {
    static func instances() -> String { "/1.0/instances" }
    static func instance(_ name: String) -> String { "/1.0/instances/\(component(name))" }
    static func state(_ name: String) -> String { instance(name) + "/state" }
    static func exec(_ name: String) -> String { instance(name) + "/exec" }
    static func snapshots(_ name: String) -> String { instance(name) + "/snapshots" }
    static func files(_ name: String, path: String) -> String { instance(name) + "/files?path=\(queryValue(path))" }

    /// `sub("/1.0/operations/ID?project=p", "wait", query: "timeout=5")` is
    /// `/1.0/operations/ID/wait?project=p&timeout=5`: an operation's URL may carry a query, and the
    /// sub-resource goes into the path, before it.
    static func sub(_ operation: String, _ leaf: String, query: String? = nil) -> String {
        let parts = operation.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var path = String(parts[0])
        if path.hasSuffix("/") { path.removeLast() }
        var queries = parts.count > 1 && !parts[1].isEmpty ? [String(parts[1])] : []
        if let query { queries.append(query) }
        return "\(path)/\(leaf)" + (queries.isEmpty ? "" : "?" + queries.joined(separator: "&"))
    }

    /// Adds `project=NAME` unless the project is the default one or the path names one already.
    static func withProject(_ path: String, _ project: String) -> String {
        guard project != "default", !project.isEmpty, !path.contains("project=") else { return path }
        return path + (path.contains("?") ? "&" : "?") + "project=\(queryValue(project))"
    }

    /// A path segment: instance names are letters, digits and dashes, but nothing is trusted.
    static func component(_ s: String) -> String { escape(s, keeping: unreserved) }
    /// A query value: a file path keeps its slashes.
    static func queryValue(_ s: String) -> String { escape(s, keeping: unreserved.union([UInt8(ascii: "/")])) }

    private static let unreserved: Set<UInt8> = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8))

    private static func escape(_ s: String, keeping allowed: Set<UInt8>) -> String {
        var out = ""
        for byte in s.utf8 {
            if allowed.contains(byte) {
                out.append(Character(Unicode.Scalar(byte)))
            } else {
                let hex = Array("0123456789ABCDEF")
                out += "%" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 15)])
            }
        }
        return out
    }
}
