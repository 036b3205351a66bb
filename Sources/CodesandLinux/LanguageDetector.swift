import CodesandCore

import Foundation
import Logging

/// Finds which configured languages are installed, and their versions, once at start.
public enum LanguageDetector {
    public static func detect(_ specs: [LanguageSpec], logger: Logger) -> LanguageTable {
        var entries: [LanguageTable.Entry] = []
        for spec in specs {
            // A compiled language needs its compiler; its run argv names the program it builds.
            let program = spec.compile.first ?? spec.run.first ?? ""
            guard FileManager.default.isExecutableFile(atPath: program) else {
                logger.notice("language left out: its program is not installed", metadata: [
                    "language": "\(spec.name)", "program": "\(program)"])
                continue
            }
            let text = spec.version.isEmpty ? nil : HostCommand.output(spec.version)
            let version = text.flatMap(LanguageSpec.extractVersion) ?? "unknown"
            entries.append(.init(spec: spec, version: version))
        }
        return LanguageTable(entries: entries)
    }
}
