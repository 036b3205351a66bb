import CodesandCore
import CodesandProtocol
import Logging

/// A live update: new sandboxes are built from the new config (another image, mounts, limits,
/// languages) and the pool moves over slot by slot while it keeps serving. Every run uses either
/// the old or the new configuration, never a mix.
public struct PoolReloader: Sendable {
    public let backend: NativeBackend
    public let service: RunService
    public let logger: Logger

    public init(backend: NativeBackend, service: RunService, logger: Logger) {
        self.backend = backend
        self.service = service
        self.logger = logger
    }

    /// Applies `config`; throws (keeping the old one) when its sandbox layout is invalid, e.g. an
    /// image that is not there. Returns what `pool.reload` answers.
    public func apply(_ config: CodesandConfig) async throws -> JSONValue {
        let generation = try backend.addLayout(config.sandbox)
        let languages = await LanguageDetector.detect(config.languages, backend: backend, config: config.sandbox, logger: logger)
        let kept = service.reload(config: config, languages: languages, generation: generation)
        service.pool.retryBroken()  // the cause may be fixed: broken slots try again now, not after their back-off
        service.pool.recycleAll()
        logger.notice("configuration reloaded", metadata: [
            "rootfs": "\(config.sandbox.rootfs)", "languages": "\(languages.names.joined(separator: ","))",
            "needs_restart": "\(kept.joined(separator: ","))"])
        return .object([
            "rootfs": .string(config.sandbox.rootfs),
            "languages": .array(languages.infos.map { .object(["name": .string($0.name), "version": .string($0.version)]) }),
            "needs_restart": .array(kept.map { .string($0) }),
        ])
    }
}
