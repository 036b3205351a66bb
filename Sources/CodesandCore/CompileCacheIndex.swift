/// The compile cache's bookkeeping, apart from its files: which entries exist, their sizes, and
/// which go when the bounds are passed (least recently used first). Pure logic; CompileCache
/// (CodesandLinux) keeps the files and asks this what to do.
public struct CompileCacheIndex: Sendable {
    /// At most this many entries and this many bytes in all; 0 in either disables the cache.
    public let maxEntries: Int
    public let maxBytes: Int64
    private var entries: [String: (bytes: Int64, lastUse: UInt64)] = [:]
    private var clock: UInt64 = 0
    public private(set) var totalBytes: Int64 = 0

    public init(maxEntries: Int, maxBytes: Int64) {
        self.maxEntries = max(0, maxEntries)
        self.maxBytes = max(0, maxBytes)
    }

    public var isEnabled: Bool { maxEntries > 0 && maxBytes > 0 }
    public var count: Int { entries.count }
    public func contains(_ key: String) -> Bool { entries[key] != nil }

    /// The largest entry taken: a quarter of the byte bound, so one program cannot flush the rest.
    public var maxEntryBytes: Int64 { maxBytes / 4 }

    /// A hit: the entry becomes the most recently used. False if there is no such entry.
    public mutating func touch(_ key: String) -> Bool {
        guard entries[key] != nil else { return false }
        clock += 1
        entries[key]!.lastUse = clock
        return true
    }

    /// Adds (or replaces) an entry as the most recently used and returns the keys evicted to stay
    /// within the bounds, oldest first; the caller removes their files. An entry past
    /// `maxEntryBytes` (or any, when disabled) is not added and is returned itself.
    public mutating func insert(_ key: String, bytes: Int64) -> [String] {
        guard isEnabled, bytes <= maxEntryBytes else { return [key] }
        remove(key)
        clock += 1
        entries[key] = (bytes, clock)
        totalBytes += bytes
        var evicted: [String] = []
        while entries.count > maxEntries || totalBytes > maxBytes,
              let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
            remove(oldest)
            evicted.append(oldest)
        }
        return evicted
    }

    public mutating func remove(_ key: String) {
        if let old = entries.removeValue(forKey: key) { totalBytes -= old.bytes }
    }
}

/// The name of a compiled program in the cache: SHA-256 over everything that decides what the
/// compiler writes. Each field is length-prefixed, so no two field lists share an encoding.
public enum CompileCacheKey {
    /// `compiler`: the language and its compiler's version as the language table has it;
    /// `argv`, `env`: the compile stage's, resolved (flags and paths in it); `system`: the identity
    /// of the sandboxes' system (rootfs, image, the compiler file), so that a reload to another
    /// image or an upgraded compiler never reuses a program built by the old one.
    public static func make(language: String, version: String, argv: [String], env: [String], code: [UInt8],
                            system: [String]) -> String {
        var hash = SHA256()
        func field(_ bytes: [UInt8]) {
            var n = UInt64(bytes.count)
            hash.update(withUnsafeBytes(of: &n) { Array($0) })
            hash.update(bytes)
        }
        func list(_ tag: String, _ items: [String]) {
            field(Array(tag.utf8))
            field(Array(String(items.count).utf8))
            for item in items { field(Array(item.utf8)) }
        }
        field(Array("codesand-compile-cache-1".utf8))
        list("language", [language, version])
        list("argv", argv)
        list("env", env)
        list("system", system)
        field(Array("code".utf8))
        field(code)
        return hash.finishHex()
    }
}
