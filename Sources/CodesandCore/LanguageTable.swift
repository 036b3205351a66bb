import CodesandProtocol

/// The languages this daemon serves, with versions detected once at start.
public struct LanguageTable: Sendable {
    public struct Entry: Sendable {
        public var spec: LanguageSpec
        public var version: String
        public init(spec: LanguageSpec, version: String) {
            self.spec = spec
            self.version = version
        }
    }

    public private(set) var entries: [Entry]
    private var byName: [String: Int] = [:]

    public init(entries: [Entry]) {
        self.entries = entries.sorted { $0.spec.name < $1.spec.name }
        for (i, e) in self.entries.enumerated() {
            for alias in e.spec.aliases where byName[alias] == nil { byName[alias] = i }
        }
        // Names win over another language's alias of the same spelling.
        for (i, e) in self.entries.enumerated() { byName[e.spec.name] = i }
    }

    public func lookup(_ nameOrAlias: String) -> Entry? {
        byName[nameOrAlias].map { entries[$0] }
    }

    public var infos: [LanguageInfo] {
        entries.map { LanguageInfo(name: $0.spec.name, aliases: $0.spec.aliases, version: $0.version) }
    }

    public var names: [String] { entries.map(\.spec.name) }
}

extension LanguageSpec {
    /// The first word of `text` that looks like a version ("3.11.2", "5.2.15(1)-release" → "5.2.15").
    public static func extractVersion(_ text: String) -> String? {
        for line in text.split(whereSeparator: \.isNewline) {
            for word in line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }) {
                var digits = Substring(word)
                for prefix in ["v", "go"] where digits.hasPrefix(prefix) { digits = digits.dropFirst(prefix.count) }
                let prefix = digits.prefix { $0.isNumber || $0 == "." || $0 == "-" || $0 == "+" || $0 == "~" }
                if prefix.first?.isNumber == true, prefix.contains(".") || prefix.count == digits.count {
                    return String(prefix.prefix { $0.isNumber || $0 == "." })
                }
            }
        }
        return nil
    }
}

extension String {
    /// Every occurrence of `target` replaced, left to right, by bytes (Foundation's `range(of:)`
    /// bridges through NSString: it was a visible part of each run's request handling).
    func replacingAll(_ target: String, with replacement: String) -> String {
        let hay = Array(utf8), needle = Array(target.utf8)
        guard !needle.isEmpty, hay.count >= needle.count else { return self }
        var out: [UInt8] = []
        var i = 0, copied = 0
        while i + needle.count <= hay.count {
            if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) {
                if out.isEmpty { out.reserveCapacity(hay.count + replacement.utf8.count) }
                out.append(contentsOf: hay[copied..<i])
                out.append(contentsOf: replacement.utf8)
                i += needle.count
                copied = i
            } else {
                i += 1
            }
        }
        if copied == 0 { return self }
        out.append(contentsOf: hay[copied...])
        return String(decoding: out, as: UTF8.self)
    }
}
