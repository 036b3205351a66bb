import CodesandProtocol

/// Turns a run's output into a few lines that are safe to send as the text of IRC messages
/// (`PRIVMSG #chan :<line>`). Pure: no IRC code, no I/O; a bot for any chat network can use it.
///
/// The rules, and why:
/// - **Lines.** CR, LF and CRLF each end a line (so do NEL, U+2028 and U+2029, which some clients
///   draw as line breaks). A line can therefore never carry a raw CR or LF into the IRC command the
///   bot builds from it: program output cannot end the bot's `PRIVMSG` and start a command of its own.
///   Blank lines are dropped: IRC cannot send an empty message, and they would waste the line budget.
///   When output switches between stdout and stderr mid-line, the line is ended there so that each
///   line has one stream.
/// - **Control characters.** Every C0 control (U+0000–U+001F), DEL and every C1 control
///   (U+0080–U+009F) in program output is dropped; a tab becomes a space. That removes NUL, CTCP's
///   `\x01` (a snippet could otherwise make the bot send a CTCP ACTION or VERSION request) and all IRC
///   formatting codes (`\x02` bold, `\x03` colour, `\x0F` reset, `\x16`, `\x1D`, `\x1E`, `\x1F`,
///   `\x04`): a program cannot colour, hide or spoof text in the bot's name. The only formatting in
///   the result is what the shaper adds itself (the stderr colour, below).
/// - **Triggers.** A line whose first visible character (after any whitespace or invisible
///   characters) is ASCII punctuation (`!py`, `.op`, `@kick`,
///   `$x`, `~`, `>`, `,`…) gets a leading zero-width space (U+200B), so the line cannot command
///   another bot in the channel, even one that trims leading whitespace before matching.
/// - **Size.** At most `maxLines` lines of output (default 10), each at most `maxLineBytes` bytes of
///   UTF-8 (default 400) including whatever the shaper adds. A longer line is cut at a Unicode scalar
///   boundary (never inside a multi-byte character) and ends with "…". When lines were left out, one
///   more line says "(N more lines)"; so the result has at most `maxLines + 1` lines.
/// - **Nothing to show.** Empty (or all blank) output becomes the single line "(no output)".
public struct IRCOutputShaper: Sendable {
    /// How a line that came from stderr is told apart.
    public enum StderrMark: Sendable, Hashable {
        /// Not at all.
        case none
        /// The whole line in this IRC colour (mIRC colour number 0–98; 4 is red).
        case ircColour(UInt8)
        /// A text prefix, e.g. "stderr: ". It is the bot's own text: it is not sanitised.
        case prefix(String)
    }

    public var maxLines: Int
    public var maxLineBytes: Int
    public var stderrMark: StderrMark
    /// Put before a line that starts with a trigger character. Default U+200B, zero-width space.
    public var triggerGuard: String
    /// First visible characters that could trigger another bot. Default: all ASCII punctuation.
    public var triggerCharacters: Set<Unicode.Scalar>

    /// ASCII punctuation: ``!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~``.
    public static let defaultTriggerCharacters: Set<Unicode.Scalar> =
        Set([0x21...0x2F, 0x3A...0x40, 0x5B...0x60, 0x7B...0x7E].joined().compactMap(Unicode.Scalar.init))

    public init(maxLines: Int = 10, maxLineBytes: Int = 400, stderrMark: StderrMark = .ircColour(4),
                triggerGuard: String = "\u{200B}", triggerCharacters: Set<Unicode.Scalar> = defaultTriggerCharacters) {
        self.maxLines = max(1, maxLines)
        // Below this the shaper's own additions (colour codes, guard, "…") would not fit.
        self.maxLineBytes = max(32, maxLineBytes)
        self.stderrMark = stderrMark
        self.triggerGuard = triggerGuard
        self.triggerCharacters = triggerCharacters
    }

    /// Shapes a run's interleaved output. `note` (e.g. "exit code 1", from the bot) is added to the
    /// last line's parenthesis: "(3 more lines; exit code 1)", or on its own: "(exit code 1)".
    public func shape(_ output: [OutputChunk], note: String? = nil) -> [String] {
        var collector = LineCollector(keep: maxLines, keepBytes: maxLineBytes)
        for chunk in output { collector.add(chunk.text, stream: chunk.stream) }
        collector.finish()
        var lines = collector.kept.map(render)
        let notes = [collector.dropped > 0 ? "\(collector.dropped) more line\(collector.dropped == 1 ? "" : "s")" : nil,
                     note.map(Self.clean)].compactMap { $0 }.filter { !$0.isEmpty }
        if lines.isEmpty {
            lines.append(cut("(" + (["no output"] + notes).joined(separator: "; ") + ")", to: maxLineBytes))
        } else if !notes.isEmpty {
            lines.append(cut("(" + notes.joined(separator: "; ") + ")", to: maxLineBytes))
        }
        return lines
    }

    /// Shapes plain text as if the program had written it to stdout.
    public func shape(_ text: String, note: String? = nil) -> [String] {
        shape([OutputChunk(stream: .stdout, text: text)], note: note)
    }

    // MARK: Rendering one line

    private func render(_ line: CollectedLine) -> String {
        // Skip what a bot might trim or ignore before matching its trigger (Python's strip() also
        // removes U+00A0 and U+2000…; U+FEFF and U+2060 are invisible).
        let first = line.text.unicodeScalars.first {
            !$0.properties.isWhitespace && !$0.properties.isDefaultIgnorableCodePoint
        }
        let guardText = first.map { triggerCharacters.contains($0) } == true ? triggerGuard : ""
        var head = guardText, tail = ""
        if line.stream == .stderr {
            switch stderrMark {
            case .none:
                break
            case .ircColour(let colour):
                // Two digits always, so a line starting with a digit is not read as part of the colour
                // number; an empty bold toggle (\x02\x02) ends the code before a "," that would
                // otherwise start a background colour.
                let digits = colour < 10 ? "0\(colour)" : "\(min(colour, 98))"
                head = "\u{03}" + digits + (line.text.hasPrefix(",") ? "\u{02}\u{02}" : "") + guardText
                tail = "\u{0F}"
            case .prefix(let prefix):
                head = prefix + guardText
            }
        }
        let room = max(4, maxLineBytes - head.utf8.count - tail.utf8.count)  // a long .prefix leaves "…"
        return head + (line.text.utf8.count > room || line.wasCut ? cut(line.text, to: room, force: true) : line.text) + tail
    }

    /// `text` in at most `bytes` bytes, cut at a scalar boundary and ended by "…" when shortened.
    private func cut(_ text: String, to bytes: Int, force: Bool = false) -> String {
        if !force && text.utf8.count <= bytes { return text }
        let ellipsis = "…"
        var out = String.UnicodeScalarView()
        var used = 0
        for scalar in text.unicodeScalars {
            let size = UTF8.width(scalar)
            if used + size > bytes - ellipsis.utf8.count { break }
            out.append(scalar)
            used += size
        }
        return String(out) + ellipsis
    }

    /// Removes every control character from text the bot itself built (a note may quote the daemon).
    static func clean(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.filter { !LineCollector.isControl($0) }))
    }
}

/// One output line after control characters were removed, possibly already cut short.
struct CollectedLine {
    var stream: OutputStream
    var text: String
    var wasCut: Bool
}

/// Splits output into lines and keeps the first `keep` non-blank ones, each at most `keepBytes`
/// bytes (the rest of a long line is only scanned), while counting the non-blank lines after them.
/// Output can be a MiB of short lines or one long line; neither is copied whole.
struct LineCollector {
    let keep: Int
    let keepBytes: Int
    private(set) var kept: [CollectedLine] = []
    private(set) var dropped = 0

    private var current = String.UnicodeScalarView()
    private var currentBytes = 0
    private var currentCut = false
    private var currentBlank = true
    private var stream: OutputStream = .stdout
    /// The last scalar was a CR: an LF right after it belongs to the same line break.
    private var afterCR = false

    init(keep: Int, keepBytes: Int) {
        self.keep = keep
        self.keepBytes = keepBytes
    }

    mutating func add(_ text: String, stream newStream: OutputStream) {
        if newStream != stream {
            endLine()
            stream = newStream
            afterCR = false
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n" where afterCR:
                afterCR = false
            case "\r", "\n", "\u{85}", "\u{2028}", "\u{2029}":
                endLine()
                afterCR = scalar == "\r"
            default:
                afterCR = false
                append(scalar == "\t" ? " " : scalar)
            }
        }
    }

    mutating func finish() {
        endLine()
    }

    private mutating func append(_ scalar: Unicode.Scalar) {
        guard !Self.isControl(scalar) else { return }
        if scalar != " " { currentBlank = false }
        // Lines past the kept ones are only counted, so their text need not be stored.
        guard kept.count < keep, !currentCut else { return }
        let size = UTF8.width(scalar)
        if currentBytes + size > keepBytes {
            currentCut = true
            return
        }
        current.append(scalar)
        currentBytes += size
    }

    private mutating func endLine() {
        defer {
            current = String.UnicodeScalarView()
            currentBytes = 0
            currentCut = false
            currentBlank = true
        }
        guard !currentBlank else { return }
        if kept.count < keep {
            kept.append(CollectedLine(stream: stream, text: String(current), wasCut: currentCut))
        } else {
            dropped += 1
        }
    }

    /// C0 controls, DEL and C1 controls: nothing a program writes there is meant for IRC.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }
}
