import CodesandCore
import CodesandLXD
import CodesandLinux
import Logging

/// The sandbox backend `sandbox.backend` names: codesand's own namespaces ("native") or LXD's
/// containers ("lxd", with the `[lxd]` section).
enum BackendFactory {
    static func make(_ cfg: CodesandConfig, logger: Logger) async throws -> any SandboxBackend {
        switch cfg.sandbox.backend {
        case "lxd":
            return try await LXDBackend.connect(config: cfg.sandbox, poolSize: cfg.poolSize, defaultLimits: cfg.defaultLimits, logger: logger)
        default:
            return try NativeBackend(config: cfg.sandbox, poolSize: cfg.poolSize, defaultLimits: cfg.defaultLimits, logger: logger)
        }
    }
}
