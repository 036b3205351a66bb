import ArgumentParser
import CodesandCore
import CodesandLinux
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
        version: version)

    @Option(help: "Config file (TOML). Without it, the built-in defaults.")
    var config: String?

    @Option(help: "Listen on this unix socket path instead of socket.path.")
    var socket: String?

    @Flag(help: "Check the config and exit: 0 if valid, 1 with a message naming the bad key if not.")
    var checkConfig = false

    func run() async throws {
        let cfg: CodesandConfig
        do {
            cfg = try config.map { try ConfigLoader.load(path: $0) } ?? CodesandConfig.defaults()
        } catch {
            FileHandle.standardError.write(Data("codesandd: invalid configuration: \(error)\n".utf8))
            throw ExitCode(1)
        }
        if checkConfig {
            print("configuration OK (\(cfg.languages.count) languages, pool size \(cfg.poolSize))")
            return
        }
        let level = Logger.Level(rawValue: cfg.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "codesandd")
        let backend: NativeBackend
        do {
            backend = try NativeBackend(config: cfg.sandbox, poolSize: cfg.poolSize, defaultLimits: cfg.defaultLimits, logger: logger)
        } catch {
            logger.critical("cannot set up the sandbox backend: \(error)")
            throw ExitCode(1)
        }
        let languages = LanguageDetector.detect(cfg.languages, logger: logger)
        let service = RunService(config: cfg, languages: languages, backend: backend, version: Self.version, logger: logger)
        service.start()
        let tracker = RequestTracker()
        let dispatcher = Dispatcher(service: service, isShuttingDown: { tracker.isStopping })
        let server = RPCServer(dispatcher: dispatcher, tracker: tracker, maxMessageBytes: cfg.maxMessageBytes, logger: logger)

        let channel: Channel
        if let fd = SocketActivation.listenFD() {
            channel = try await server.adopt(fd: fd)
            logger.info("serving on the socket passed by systemd", metadata: ["fd": "\(fd)"])
        } else {
            let path = socket ?? cfg.socketPath
            channel = try await server.bind(path: path, group: cfg.socketGroup, mode: cfg.socketMode)
            logger.info("serving", metadata: ["socket": "\(path)", "cgroup": "\(backend.cgroupVersion)",
                                              "pool_size": "\(cfg.poolSize)", "languages": "\(languages.names.joined(separator: ","))"])
        }
        await Shutdown.waitForSignal()
        logger.info("stopping: no new requests; waiting for runs in flight", metadata: ["in_flight": "\(tracker.inFlight)"])
        tracker.stop()
        try? await channel.close()
        // Runs in flight finish within their wall limit; past the longest allowed one, give up.
        let deadline = ContinuousClock.now + .milliseconds(cfg.maxLimits.wallMs + 2000)
        while tracker.inFlight > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        backend.shutdown()
        logger.info("stopped")
    }
}
