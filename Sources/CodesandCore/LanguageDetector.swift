import Logging

/// Finds which configured languages are installed in the sandboxes' system, and their versions:
/// at start and at each reload. The backend answers for its sandboxes (the host's or an image's
/// programs for the native backend, a container's for LXD), never the daemon's host.
public enum LanguageDetector {
    public static func detect(_ specs: [LanguageSpec], backend: any SandboxBackend, config: SandboxConfig,
                              logger: Logger) async -> LanguageTable {
        var entries: [LanguageTable.Entry] = []
        let env = config.env.keys.sorted().map { "\($0)=\(config.env[$0]!)" }
        for spec in specs {
            // A compiled language needs its compiler; its run argv names the program it builds.
            let program = spec.compile.first ?? spec.run.first ?? ""
            guard await backend.isExecutable(program) else {
                logger.notice("language left out: its program is not installed", metadata: [
                    "language": "\(spec.name)", "program": "\(program)", "backend": "\(backend.name)"])
                continue
            }
            let text = spec.version.isEmpty ? nil : await backend.probe(spec.version, env: env)
            entries.append(.init(spec: spec, version: text.flatMap(LanguageSpec.extractVersion) ?? "unknown"))
        }
        return LanguageTable(entries: entries)
    }
}
