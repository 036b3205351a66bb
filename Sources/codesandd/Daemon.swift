import ArgumentParser
import CodesandCore
import CodesandLinux
import CodesandProtocol
import CodesandServer
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

@main
struct Daemon: AsyncParsableCommand {
    static let version = "0.1.0"
    static let configuration = CommandConfiguration(
        commandName: "codesandd",
        abstract: "The codesand daemon: runs untrusted code snippets in sandboxes, served as JSON-RPC on a unix socket.",
        discussion: "Signals: SIGTERM/SIGINT stop (runs in flight finish, then exit 0); SIGHUP re-reads the config file.",
        version: version)

    @Option(help: "Config file (TOML), laid over the built-in defaults. Without it, the defaults alone.")
    var config: String?

    @Option(help: "Listen on this unix socket path instead of socket.path (ignored under socket activation).")
    var socket: String?

    @Flag(help: "Check the config and exit: 0 if valid, 1 with a message naming the bad key if not.")
    var checkConfig = false

    @Flag(help: "Print the commented default config (every key, its unit and default) and exit.")
    var printDefaultConfig = false

    func run() async throws {
        if printDefaultConfig {
            print(DefaultConfig.toml, terminator: "")
            return
        }
        let cfg: CodesandConfig
        do {
            cfg = try loadConfig()
        } catch {
            FileHandle.standardError.write(Data("codesandd: invalid configuration: \(error)\n".utf8))
            throw ExitCode(1)
        }
        if checkConfig {
            print("configuration OK (\(cfg.languages.count) languages, pool size \(cfg.poolSize))")
            return
        }
        umask(0o022)
        let logger = Self.bootstrapLogging(level: cfg.logLevel)
        defer { LogWriter.shared.flush(timeoutMs: 2000) }  // the last lines (why it stopped) are written
        let fileLimit = FileLimit.raiseSoftLimit(logger: logger)
        let notify = SystemdNotify()
        // Trapped before start-up takes a while (the backend, zygotes, the languages' probes: seconds),
        // where their default action would end the daemon with sandboxes left behind: a SIGHUP
        // meanwhile is applied once the daemon serves; a SIGTERM or SIGINT stops it as soon as the
        // group runs (the group traps them itself only from then on).
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let startupStops = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let backend: any SandboxBackend
        do {
            backend = try await BackendFactory.make(cfg, logger: logger)
        } catch {
            logger.critical("cannot set up the sandbox backend: \(error)")
            notify.send("STATUS=failed: \(error)")
            throw ExitCode(1)
        }
        let languages = await LanguageDetector.detect(cfg.languages, backend: backend, config: cfg.sandbox, logger: logger)
        let service = RunService(config: cfg, languages: languages, backend: backend, version: Self.version, logger: logger)
        let tracker = RequestTracker()
        let dispatcher = Dispatcher(service: service, isShuttingDown: { tracker.isStopping }, reload: {
            try await self.reload(service, backend: backend, logger: logger, notify: notify)
        })
        // Counted once the backend, its zygotes and the languages' probes hold what they keep.
        let limits = FileLimit.connectionLimits(
            configured: ConnectionLimits(total: cfg.maxConnections, perUID: cfg.maxConnectionsPerUID),
            fileLimit: fileLimit, openNow: FileLimit.openCount(), poolSize: cfg.poolSize, logger: logger)
        let server = RPCServer(dispatcher: dispatcher, tracker: tracker, maxMessageBytes: cfg.maxMessageBytes,
                               connectionLimits: limits, logger: logger)
        if let loop = server.loopExecutor { service.pool.preparesPrefer(loop) }
        let address: ListenAddress = SocketActivation.listenFD().map { .systemd(fd: $0) }
            ?? .path(socket ?? cfg.socketPath, group: cfg.socketGroup, mode: cfg.socketMode)

        // Started in this order, shut down in reverse (DaemonServices.swift).
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: PoolService(service: service, backend: backend), serviceName: "pool"),
        ]
        if let interval = notify.watchdogInterval {
            let watchdog = WatchdogService(notify: notify, interval: interval, healthy: { _ = service.status(); return true })
            services.append(.init(service: watchdog, serviceName: "watchdog"))
        }
        let serverService = ServerService(
            server: server, address: address, grace: .milliseconds(cfg.maxLimits.wallMs + 1000), notify: notify,
            logger: logger, onReady: {
                logger.info("ready", metadata: ["cgroup": "\(backend.cgroupVersion)", "pool_size": "\(cfg.poolSize)",
                                                "max_connections": "\(limits.total)", "open_file_limit": "\(fileLimit)",
                                                "languages": "\(languages.names.joined(separator: ","))"])
                notify.send("READY=1\nSTATUS=serving: pool of \(cfg.poolSize), \(languages.names.count) languages")
            })
        services.append(.init(service: serverService, serviceName: "server"))
        let reloadService = ReloadService(hangups: hangups, reload: {
            _ = try? await self.reload(service, backend: backend, logger: logger, notify: notify)
        })
        services.append(.init(service: reloadService, serviceName: "reload"))
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let forwardStartupStop = Task {
            for await _ in startupStops {
                await group.triggerGracefulShutdown()
                return
            }
        }
        defer { forwardStartupStop.cancel() }
        do {
            try await group.run()
        } catch {
            logger.critical("\(error)")
            notify.send("STATUS=failed: \(error)")
            throw ExitCode(1)
        }
        logger.info("stopped")
    }

    func loadConfig() throws -> CodesandConfig {
        try config.map { try ConfigLoader.load(path: $0) } ?? CodesandConfig.defaults()
    }

    /// SIGHUP or `pool.reload`: re-read the config, build new sandboxes from it (another image,
    /// other limits or languages) and move the pool over slot by slot while serving. A bad config
    /// is refused and the old one stays.
    func reload(_ service: RunService, backend: any SandboxBackend, logger: Logger, notify: SystemdNotify) async throws -> ReloadResult {
        notify.send("RELOADING=1")
        defer { notify.send("READY=1") }
        do {
            return try await PoolReloader(backend: backend, service: service, logger: logger).apply(try loadConfig())
        } catch {
            logger.error("configuration not reloaded, the old one stays: \(error)")
            throw RPCError(.invalidParams, "configuration not reloaded, the old one stays: \(error)")
        }
    }

    /// swift-log to stderr, one line per event: journald adds the time, so the line starts with the level.
    static func bootstrapLogging(level: String) -> Logger {
        let lvl = Logger.Level(rawValue: level) ?? .info
        LoggingSystem.bootstrap { label in
            var h = JournalLogHandler(label: label)
            h.logLevel = lvl
            return h
        }
        return Logger(label: "codesandd")
    }
}
