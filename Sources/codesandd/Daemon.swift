import ArgumentParser
import CodesandCore
import CodesandLinux
import CodesandProtocol
import CodesandServer
import Foundation
import Logging
import NIOCore

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
        let fileLimit = FileLimit.raiseSoftLimit(logger: logger)
        let notify = SystemdNotify()
        let backend: any SandboxBackend
        do {
            backend = try BackendFactory.make(cfg, logger: logger)
        } catch {
            logger.critical("cannot set up the sandbox backend: \(error)")
            notify.send("STATUS=failed: \(error)")
            throw ExitCode(1)
        }
        let languages = await LanguageDetector.detect(cfg.languages, backend: backend, config: cfg.sandbox, logger: logger)
        let service = RunService(config: cfg, languages: languages, backend: backend, version: Self.version, logger: logger)
        service.start()
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
        let signals = Signals.stream()

        let channel: Channel
        do {
            if let fd = SocketActivation.listenFD() {
                channel = try await server.adopt(fd: fd)
                logger.info("serving on the socket passed by systemd", metadata: ["fd": "\(fd)"])
            } else {
                let path = socket ?? cfg.socketPath
                channel = try await server.bind(path: path, group: cfg.socketGroup, mode: cfg.socketMode)
                logger.info("serving", metadata: ["socket": "\(path)"])
            }
        } catch {
            logger.critical("cannot listen: \(error)")
            await backend.shutdown()
            throw ExitCode(1)
        }
        logger.info("ready", metadata: ["cgroup": "\(backend.cgroupVersion)", "pool_size": "\(cfg.poolSize)",
                                        "max_connections": "\(limits.total)", "open_file_limit": "\(fileLimit)",
                                        "languages": "\(languages.names.joined(separator: ","))"])
        notify.send("READY=1\nSTATUS=serving: pool of \(cfg.poolSize), \(languages.names.count) languages")
        // Alive while the pool's scheduler answers. Not "while a slot works": a pool that cannot
        // prepare sandboxes answers every run at once with -32603 and the cause (a missing image…),
        // which a restart would not fix, and a restart loop would leave clients hanging instead.
        let watchdog = notify.runWatchdog { _ = service.status(); return true }

        for await signal in signals {
            if signal == .stop { break }
            _ = try? await reload(service, backend: backend, logger: logger, notify: notify)
        }
        watchdog?.cancel()
        await stop(service: service, backend: backend, tracker: tracker, channel: channel, server: server,
                   graceMs: cfg.maxLimits.wallMs + 1000, logger: logger, notify: notify)
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

    /// SIGTERM: stop accepting; runs in flight finish up to `graceMs`, then are killed; every request
    /// in flight gets its reply (a result or -32003); every sandbox is cleaned; then exit 0.
    func stop(service: RunService, backend: any SandboxBackend, tracker: RequestTracker, channel: Channel, server: RPCServer,
              graceMs: Int64, logger: Logger, notify: SystemdNotify) async {
        notify.send("STOPPING=1\nSTATUS=stopping: \(tracker.inFlight) requests in flight")
        logger.info("stopping: no new requests; letting runs in flight finish", metadata: ["in_flight": "\(tracker.inFlight)"])
        tracker.stop()
        service.stop()
        try? await channel.close()
        if !(await waitIdle(tracker, ms: graceMs)) {
            logger.warning("killing the runs still in flight", metadata: ["in_flight": "\(tracker.inFlight)"])
            tracker.cancelAll()
            _ = await waitIdle(tracker, ms: 5000)
        }
        try? await Task.sleep(for: .milliseconds(50))  // let the last replies leave the socket buffers
        await backend.shutdown()
        try? await server.shutdownEventLoops()
        logger.info("stopped")
    }

    func waitIdle(_ tracker: RequestTracker, ms: Int64) async -> Bool {
        let end = ContinuousClock.now + .milliseconds(ms)
        while tracker.inFlight > 0 {
            if ContinuousClock.now >= end { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
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
