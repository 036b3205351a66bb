import CodesandProtocol
import Logging

/// A live update: new sandboxes are built from the new config (another image, mounts, limits,
/// languages) and the pool moves over slot by slot while it keeps serving. Every run uses either
/// the old or the new configuration, never a mix.
public struct PoolReloader: Sendable {
    public let backend: any SandboxBackend
    public let service: RunService
    public let logger: Logger

    public init(backend: any SandboxBackend, service: RunService, logger: Logger) {
        self.backend = backend
        self.service = service
        self.logger = logger
    }

    /// Applies `config`; throws (keeping the old one) when the backend refuses it, e.g. an image
    /// that is not there. Returns what `pool.reload` answers.
    public func apply(_ config: CodesandConfig) async throws -> ReloadResult {
        let generation = try await backend.addGeneration(config)
        let languages = await LanguageDetector.detect(config.languages, backend: backend, config: config.sandbox, logger: logger)
        let kept = service.reload(config: config, languages: languages, generation: generation)
        service.pool.retryBroken()  // the cause may be fixed: broken slots try again now, not after their back-off
        service.pool.recycleAll()
        logger.notice("configuration reloaded", metadata: [
            "rootfs": "\(config.sandbox.rootfs)", "languages": "\(languages.names.joined(separator: ","))",
            "needs_restart": "\(kept.joined(separator: ","))"])
        return ReloadResult(rootfs: config.sandbox.rootfs,
                            languages: languages.infos.map { .init(name: $0.name, version: $0.version) },
                            needsRestart: kept)
    }
}
