/// One IRC protocol message (RFC 1459 / 2812 grammar; IRCv3 tags are read and ignored).
///
/// Encoding is the bot's last line of defence against injection: `encoded()` refuses any parameter
/// holding CR, LF or NUL and any message longer than the protocol's 512 bytes, so no text, however
/// it was built, can end the bot's command early and start another one.
public struct IRCMessage: Sendable, Hashable, CustomStringConvertible {
    /// `nick!user@host` or a server name; `nil` on what the bot sends.
    public var prefix: String?
    /// Upper-case letters (`PRIVMSG`) or three digits (`001`).
    public var command: String
    public var params: [String]

    /// The longest line IRC allows, CRLF included (RFC 2812 §2.3).
    public static let maxLineBytes = 512

    public init(prefix: String? = nil, _ command: String, _ params: [String]) {
        self.prefix = prefix
        self.command = command
        self.params = params
    }

    public static func privmsg(_ target: String, _ text: String) -> IRCMessage { IRCMessage("PRIVMSG", [target, text]) }
    public static func notice(_ target: String, _ text: String) -> IRCMessage { IRCMessage("NOTICE", [target, text]) }

    /// The nick part of the prefix (`nick` in `nick!user@host`).
    public var nick: String? {
        guard let prefix else { return nil }
        return String(prefix.prefix { $0 != "!" && $0 != "@" })
    }

    /// Parses one line as received, without its CRLF. `nil` for a line with no command.
    public init?(parsing line: String) {
        var rest = Substring(line)
        func word() -> Substring {
            while rest.first == " " { rest.removeFirst() }
            let w = rest.prefix { $0 != " " }
            rest = rest.dropFirst(w.count)
            return w
        }
        while rest.first == " " { rest.removeFirst() }
        if rest.first == "@" { _ = word() }  // IRCv3 message tags: nothing the bot needs
        while rest.first == " " { rest.removeFirst() }
        prefix = rest.first == ":" ? String(word().dropFirst()) : nil
        let cmd = word()
        guard !cmd.isEmpty else { return nil }
        command = cmd.uppercased()
        params = []
        while true {
            while rest.first == " " { rest.removeFirst() }
            if rest.isEmpty { break }
            if rest.first == ":" {
                params.append(String(rest.dropFirst()))
                break
            }
            params.append(String(word()))
        }
    }

    public enum EncodingError: Error, Hashable, CustomStringConvertible {
        /// A parameter holds CR, LF or NUL: sending it would split the line into two commands.
        case forbiddenCharacter(parameter: Int)
        /// A parameter before the last is empty, holds a space or starts with ':'.
        case malformedParameter(Int)
        case malformedCommand
        /// The line with its CRLF would be longer than 512 bytes.
        case tooLong(bytes: Int)

        public var description: String {
            switch self {
            case .forbiddenCharacter(let i): return "parameter \(i) holds CR, LF or NUL"
            case .malformedParameter(let i): return "parameter \(i) is empty, holds a space or starts with ':'"
            case .malformedCommand: return "the command is neither letters nor three digits"
            case .tooLong(let n): return "the line would be \(n) bytes with CRLF, over IRC's \(IRCMessage.maxLineBytes)"
            }
        }
    }

    /// The line to send, CRLF included. Throws rather than send anything that is not exactly one
    /// well-formed message of at most 512 bytes.
    public func encoded() throws(EncodingError) -> String {
        let isLetters = !command.isEmpty && command.unicodeScalars.allSatisfy { ("A"..."Z").contains($0) }
        let isNumeric = command.count == 3 && command.unicodeScalars.allSatisfy { ("0"..."9").contains($0) }
        guard isLetters || isNumeric else { throw .malformedCommand }
        var line = prefix.map { ":\($0) " } ?? ""
        line += command
        for (i, param) in params.enumerated() {
            guard !param.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
                throw .forbiddenCharacter(parameter: i)
            }
            if i == params.count - 1 {
                line += " :" + param  // always trailing: the text may hold spaces or start with ':'
            } else {
                guard !param.isEmpty, !param.contains(" "), !param.hasPrefix(":") else { throw .malformedParameter(i) }
                line += " " + param
            }
        }
        line += "\r\n"
        guard line.utf8.count <= Self.maxLineBytes else { throw .tooLong(bytes: line.utf8.count) }
        return line
    }

    public var description: String {
        ([prefix.map { ":\($0)" }, command].compactMap { $0 } + params.enumerated().map { i, p in
            i == params.count - 1 ? ":" + p : p
        }).joined(separator: " ")
    }
}

/// IRC's case mapping (rfc1459): `[]\~` are the upper case of `{}|^`, so `Nick[1]` and `nick{1}`
/// are one nick. Used for nick and channel keys.
func ircLowercased(_ name: String) -> String {
    String(String.UnicodeScalarView(name.lowercased().unicodeScalars.map { scalar -> Unicode.Scalar in
        switch scalar {
        case "[": return "{"
        case "]": return "}"
        case "\\": return "|"
        case "~": return "^"
        default: return scalar
        }
    }))
}
