/// How the bot logs in to its account on the network (IRCv3 SASL, sent before registration ends).
public enum SASLMechanism: String, Sendable, Hashable, CaseIterable {
    /// Account and password, base64 in `AUTHENTICATE` (only ever over TLS in a sane config).
    case plain = "PLAIN"
    /// The TLS client certificate is the credential: services know its fingerprint.
    case external = "EXTERNAL"
}

public struct SASLCredentials: Sendable, Hashable {
    public var mechanism: SASLMechanism
    /// The account (authcid); unused by EXTERNAL.
    public var account: String
    /// PLAIN's password: read from a file or the environment, never from the command line.
    public var password: String

    public init(mechanism: SASLMechanism, account: String = "", password: String = "") {
        self.mechanism = mechanism
        self.account = account
        self.password = password
    }
}

/// Why a connection ended without the bot's wish. `fatal` ends the bot (retrying cannot help and
/// would hammer the services); anything else is worth a reconnect after a pause.
public struct SessionEnd: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String
    public var fatal: Bool
    /// The server had welcomed the bot before the end (one that never did may be broken: try another).
    public var afterRegistration = false

    public init(_ reason: String, fatal: Bool) {
        self.reason = reason
        self.fatal = fatal
    }

    public var description: String { reason }
}

/// IRCv3 capability negotiation (`CAP LS 302`, `CAP REQ`, `CAP END`) and the SASL exchange, as a
/// pure state machine: messages in, messages out. The server holds registration until `CAP END`,
/// so SASL finishes before the bot is welcomed, and a failure is known before it joins anything.
public struct CapabilityNegotiator: Sendable {
    public enum Step: Sendable, Hashable {
        case send(IRCMessage)
        /// Negotiation cannot succeed on this connection.
        case end(SessionEnd)
    }

    public let sasl: SASLCredentials?
    /// What the server offers (`name` → value, e.g. `sasl` → `EXTERNAL,PLAIN`), once listed.
    public private(set) var offered: [String: String] = [:]
    public private(set) var isFinished = false
    /// The server accepted the credentials (903).
    public private(set) var loggedIn = false
    private var listing = true

    /// `AUTHENTICATE` carries at most 400 bytes of base64 per line (IRCv3 SASL 3.1).
    static let chunkBytes = 400

    public init(sasl: SASLCredentials?) {
        self.sasl = sasl
    }

    /// The first line of all: asks for the list, which also tells the server to wait for `CAP END`.
    public func start() -> [Step] {
        [.send(IRCMessage("CAP", ["LS", "302"]))]
    }

    /// Handles CAP, AUTHENTICATE and the SASL numerics; other messages are not its concern (nil).
    public mutating func handle(_ message: IRCMessage) -> [Step]? {
        switch message.command {
        case "CAP":
            return cap(message)
        case "AUTHENTICATE":
            return authenticate(message)
        case "900":  // RPL_LOGGEDIN: informational; 903 follows
            return []
        case "903":  // RPL_SASLSUCCESS
            loggedIn = true
            return finish()
        case "902", "904", "905", "906", "908":
            guard !isFinished else { return [] }
            let text = message.params.last ?? ""
            let mechanism = sasl?.mechanism.rawValue ?? "?"
            let who = sasl?.mechanism == .plain ? " for account \(sasl!.account)" : ""
            return [.end(SessionEnd("SASL \(mechanism) authentication failed\(who): \(text) (\(message.command))", fatal: true))]
        case "421" where message.params.dropFirst().first?.uppercased() == "CAP":
            // An old server without CAP: it registers us as usual, but cannot log us in.
            guard !isFinished else { return [] }
            isFinished = true
            return sasl == nil ? [] : [.end(SessionEnd("the server does not support CAP, so no SASL", fatal: true))]
        default:
            return nil
        }
    }

    private mutating func cap(_ message: IRCMessage) -> [Step] {
        // :server CAP <nick> <subcommand> [*] :<list>
        guard message.params.count >= 3, !isFinished else { return [] }
        let sub = message.params[1].uppercased()
        let list = message.params.last ?? ""
        switch sub {
        case "LS":
            for item in list.split(separator: " ") {
                let parts = item.split(separator: "=", maxSplits: 1)
                offered[String(parts[0]).lowercased()] = parts.count > 1 ? String(parts[1]) : ""
            }
            // "CAP * LS * :…" means more lines follow.
            if message.params.count >= 4 && message.params[2] == "*" { return [] }
            listing = false
            return afterListing()
        case "ACK":
            let acked = Set(list.split(separator: " ").map { $0.lowercased() })
            guard let sasl, acked.contains("sasl") else { return finish() }
            return [.send(IRCMessage("AUTHENTICATE", [sasl.mechanism.rawValue]))]
        case "NAK":
            return [.end(SessionEnd("the server refused the capabilities \(list)", fatal: sasl != nil))]
        default:  // NEW, DEL, LIST: nothing the bot asks for changes
            return []
        }
    }

    private mutating func afterListing() -> [Step] {
        guard let sasl else { return finish() }
        guard let value = offered["sasl"] else {
            // Services may be away (a netsplit, a restart): not the bot's fault, so try again later.
            return [.end(SessionEnd("the server does not offer SASL now (are its services linked?)", fatal: false))]
        }
        // CAP 302 lists the mechanisms; an empty value means "ask and see".
        let mechanisms = value.split(separator: ",").map { $0.uppercased() }
        if !mechanisms.isEmpty && !mechanisms.contains(sasl.mechanism.rawValue) {
            return [.end(SessionEnd("SASL \(sasl.mechanism.rawValue) is not offered by the server (it has \(value))", fatal: true))]
        }
        return [.send(IRCMessage("CAP", ["REQ", "sasl"]))]
    }

    private mutating func authenticate(_ message: IRCMessage) -> [Step] {
        guard let sasl, !isFinished, message.params.first == "+" else { return [] }
        switch sasl.mechanism {
        case .external:
            return [.send(IRCMessage("AUTHENTICATE", ["+"]))]
        case .plain:
            // authzid NUL authcid NUL password; the authzid is the account too.
            let payload = Array("\(sasl.account)\0\(sasl.account)\0\(sasl.password)".utf8)
            return Self.chunks(base64(payload)).map { .send(IRCMessage("AUTHENTICATE", [$0])) }
        }
    }

    /// Splits base64 into 400-byte lines; one of exactly 400 is followed by `+` (nothing more).
    static func chunks(_ encoded: String) -> [String] {
        var out: [String] = []
        var rest = Substring(encoded)
        while !rest.isEmpty {
            out.append(String(rest.prefix(chunkBytes)))
            rest = rest.dropFirst(chunkBytes)
        }
        if out.isEmpty || out.last!.utf8.count == chunkBytes { out.append("+") }
        return out
    }

    private mutating func finish() -> [Step] {
        guard !isFinished else { return [] }
        isFinished = true
        return [.send(IRCMessage("CAP", ["END"]))]
    }
}

/// Standard base64 with padding (RFC 4648 §4). Here so the bot needs no Foundation for it.
func base64(_ bytes: [UInt8]) -> String {
    let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out: [UInt8] = []
    out.reserveCapacity((bytes.count + 2) / 3 * 4)
    var i = 0
    while i < bytes.count {
        let b0 = bytes[i], b1 = i + 1 < bytes.count ? bytes[i + 1] : 0, b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
        out.append(table[Int(b0 >> 2)])
        out.append(table[Int((b0 & 0x03) << 4 | b1 >> 4)])
        out.append(i + 1 < bytes.count ? table[Int((b1 & 0x0f) << 2 | b2 >> 6)] : UInt8(ascii: "="))
        out.append(i + 2 < bytes.count ? table[Int(b2 & 0x3f)] : UInt8(ascii: "="))
        i += 3
    }
    return String(decoding: out, as: UTF8.self)
}
