import CodesandServer
import Foundation
import Logging

/// One line per event on stderr, journal-friendly: "<6>info run language=python3 status=ok …".
/// The "<N>" prefix is the syslog priority, which journald reads from a service's stderr
/// (SyslogLevelPrefix); the time is left to the journal.
struct JournalLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        var line = "<\(Self.priority(event.level))>\(event.level) \(event.message)"
        for (k, v) in merged.sorted(by: { $0.key < $1.key }) {
            line += " \(k)=\(Self.quote("\(v)"))"
        }
        line += "\n"
        Self.writeToStderr(line, urgent: event.level >= .warning)
    }

    /// One write(2) of the whole line, from LogWriter's thread: whoever logs only queues it.
    static func writeToStderr(_ line: String, urgent: Bool = false) {
        LogWriter.shared.write(Array(line.utf8), urgent: urgent)
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// Values with spaces, quotes or control characters are quoted so a line stays one line.
    static func quote(_ s: String) -> String {
        let plain = !s.isEmpty && s.unicodeScalars.allSatisfy { $0.value > 0x20 && $0 != "\"" && $0 != "=" && $0.value != 0x7f }
        if plain { return s }
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case _ where u.value < 0x20 || u.value == 0x7f: out += String(format: "\\x%02x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
