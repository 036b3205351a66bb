import CodesandCore
import Foundation
import Logging

/// Finds which configured languages are installed in the sandboxes' system, and their versions:
/// at start and at each reload.
public enum LanguageDetector {
    public static func detect(_ specs: [LanguageSpec], backend: NativeBackend, config: SandboxConfig, logger: Logger) async -> LanguageTable {
        var entries: [LanguageTable.Entry] = []
        let env = config.env.keys.sorted().map { "\($0)=\(config.env[$0]!)" }
        for spec in specs {
            // A compiled language needs its compiler; its run argv names the program it builds.
            let program = spec.compile.first ?? spec.run.first ?? ""
            guard backend.isExecutable(program) else {
                logger.notice("language left out: its program is not installed", metadata: [
                    "language": "\(spec.name)", "program": "\(program)", "rootfs": "\(config.rootfs)"])
                continue
            }
            var text: String? = nil
            if !spec.version.isEmpty {
                // The host's programs answer on the host; an image's only inside a sandbox.
                text = config.rootfs == "host" ? HostCommand.output(spec.version) : await backend.probe(spec.version, env: env)
            }
            entries.append(.init(spec: spec, version: text.flatMap(LanguageSpec.extractVersion) ?? "unknown"))
        }
        return LanguageTable(entries: entries)
    }
}
