import CodesandClient
import CodesandProtocol

/// A snippet someone asked for in a channel or a private message.
public struct SnippetRequest: Sendable, Hashable {
    public var nick: String
    /// Where the answer goes: the channel, or the nick for a private message.
    public var replyTarget: String
    public var language: String
    public var code: String

    public init(nick: String, replyTarget: String, language: String, code: String) {
        self.nick = nick
        self.replyTarget = replyTarget
        self.language = language
        self.code = code
    }
}

/// What the bot says about a finished run: IRC messages, each within IRC's 512 bytes.
public struct ReplyFormatter: Sendable {
    public let shaper: IRCOutputShaper
    /// The bot's nick now: the server puts `:nick!user@host ` before every message it relays.
    public let botNick: String

    public init(shaper: IRCOutputShaper, botNick: String) {
        self.shaper = shaper
        self.botNick = botNick
    }

    /// Room for the user and host the server adds when it relays our message (USERLEN and the
    /// longest hostname); the relayed line must fit in 512 bytes too, or it is cut.
    static let relayReserve = 1 + 1 + 20 + 1 + 63 + 1  // ":" nick "!" user "@" host " "

    public func replies(to request: SnippetRequest, outcome: Result<RunResult, CodesandClientError>) -> [IRCMessage] {
        var shaper = self.shaper
        shaper.maxLineBytes = min(shaper.maxLineBytes, textBudget(target: request.replyTarget))
        let lines: [String]
        switch outcome {
        case .success(let result) where result.status == .compileError:
            // The program never ran: what there is to show is the compiler's complaint.
            lines = shaper.shape(result.compile?.output ?? [], note: Self.note(for: result))
        case .success(let result):
            lines = shaper.shape(result.output, note: Self.note(for: result))
        case .failure(let error):
            shaper.maxLines = 1
            shaper.stderrMark = .none
            lines = shaper.shape("\(request.nick): \(Self.explain(error, language: request.language))")
        }
        return lines.map { .privmsg(request.replyTarget, $0) }
    }

    /// Bytes left for the text of `PRIVMSG target :text` once the line and its relay fit in 512.
    func textBudget(target: String) -> Int {
        IRCMessage.maxLineBytes - 2 - "PRIVMSG \(target) :".utf8.count - Self.relayReserve - botNick.utf8.count
    }

    /// How the run ended, when that is not simply "ok".
    static func note(for r: RunResult) -> String? {
        // A program that passed the output limit and exited before the kill landed keeps its own
        // status; its output is cut all the same.
        let cut = r.truncated ? "; too much output, cut" : ""
        switch r.status {
        case .ok: return r.truncated ? "too much output; cut" : nil
        case .error: return "exit code \(r.exitCode.map(String.init) ?? "?")" + cut
        case .signal: return "killed by \(r.signal ?? "a signal")"
        case .timeout: return "timed out after \(r.wallMs) ms"
        case .oom: return "out of memory"
        case .outputLimit: return "too much output; stopped"
        case .compileError: return "compile error"
        }
    }

    /// A sentence for a request that got no result.
    static func explain(_ error: CodesandClientError, language: String) -> String {
        switch error {
        case .rpc(let e):
            switch e.knownCode {
            case .unknownLanguage:
                if case .array(let known)? = e.data?.objectValue?["known"] {
                    let names = known.compactMap(\.stringValue)
                    return "\(language) is not installed here (have: \(names.joined(separator: ", ")))"
                }
                return "\(language) is not installed here"
            case .busy: return "all sandboxes are busy; try again in a moment"
            case .shuttingDown: return "codesand is restarting; try again in a moment"
            case .invalidParams: return "the request was refused: \(e.message)"
            default: return "codesand failed: \(e.message)"
            }
        case .connectFailed, .connectionClosed: return "codesand is not available right now"
        case .timeout: return "no answer from codesand in time"
        case .cancelled, .protocolViolation, .encodingFailed: return "codesand failed: \(error)"
        }
    }
}
