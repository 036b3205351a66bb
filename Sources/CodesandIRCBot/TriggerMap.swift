/// Which message prefixes run which language: `!py print(1)` runs `print(1)` as `python3`.
public struct TriggerMap: Sendable, Hashable {
    /// Lower-cased trigger → the language name sent to the daemon.
    public private(set) var languages: [String: String]

    /// The shipped map: the daemon's default languages. One the daemon does not have (not installed,
    /// or left out of its config) is answered with "not installed here".
    public static let defaults = TriggerMap(uncheckedLanguages: [
        "!py": "python3", "!python": "python3", "!sh": "sh", "!bash": "bash", "!zsh": "zsh", "!fish": "fish",
        "!php": "php", "!perl": "perl", "!pl": "perl", "!ruby": "ruby", "!rb": "ruby", "!tcl": "tcl",
        "!js": "javascript", "!node": "javascript", "!go": "go", "!c": "c", "!gcc": "gcc", "!cpp": "g++",
        "!java": "java",
    ])

    private init(uncheckedLanguages: [String: String]) {
        languages = uncheckedLanguages
    }

    public struct InvalidSpec: Error, CustomStringConvertible {
        public let spec: String
        public var description: String {
            "trigger \"\(spec)\" must look like '!py=python3': a word with no spaces, '=', a language name"
        }
    }

    /// Parses specs like `!py=python3`. A trigger given twice takes the last language.
    public init(specs: [String]) throws(InvalidSpec) {
        var map: [String: String] = [:]
        for spec in specs {
            let parts = spec.split(separator: "=", maxSplits: 1).map { String($0) }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
                  !parts[0].contains(where: \.isWhitespace), !parts[1].contains(where: \.isWhitespace) else {
                throw InvalidSpec(spec: spec)
            }
            map[parts[0].lowercased()] = parts[1]
        }
        languages = map
    }

    /// The default map with `specs` laid over it.
    public static func defaults(plus specs: [String]) throws(InvalidSpec) -> TriggerMap {
        var map = defaults
        map.languages.merge(try TriggerMap(specs: specs).languages) { _, new in new }
        return map
    }

    /// The snippet a message asks for: the trigger must be the first word, and code must follow.
    public func match(_ text: String) -> (language: String, code: String)? {
        let word = text.prefix { $0 != " " }
        guard let language = languages[word.lowercased()] else { return nil }
        let code = text.dropFirst(word.count).drop { $0 == " " }
        return code.isEmpty ? nil : (language, String(code))
    }
}
