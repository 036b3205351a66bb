import CodesandCore
import CodesandProtocol
import Logging
import Synchronization

/// A backend for the server's tests: no sandboxes, every program "installed".
protocol TestBackend: SandboxBackend {}

extension TestBackend {
    var cgroupVersion: String { "v2" }
    func prepare(slot: Int, prestart: PrestartSpec?) async throws {}
    func addGeneration(_ config: CodesandConfig) async throws -> Int { 1 }
    func isExecutable(_ program: String) async -> Bool { true }
    func probe(_ argv: [String], env: [String]) async -> String? { nil }
    func shutdown() async {}
}

/// Runs end at once with "ok" and the output "out" (also streamed): the server's reading of
/// requests is under test, not sandboxes (SandboxTests run those).
final class InstantBackend: TestBackend {
    let name = "instant"

    func run(_ job: SandboxJob, slot: Int, onOutput: (@Sendable (OutputChunk) -> Void)?) async throws -> SandboxOutcome {
        onOutput?(OutputChunk(stream: .stdout, text: "out"))
        var output = OutputCollector(maxBytes: 1024, maxLines: 10)
        output.append(Array("out".utf8), from: .stdout)
        return SandboxOutcome(waitStatus: 0, timedOut: false, oomKilled: false, output: output, wallNs: 1, cpuNs: 1, memoryPeakBytes: 1)
    }
}

/// Runs wait until cancelled (or 30 s), counting how many started and how many were cancelled.
final class HoldingBackend: TestBackend {
    let name = "holding"
    let started = Mutex(0)
    let cancelled = Mutex(0)

    func run(_ job: SandboxJob, slot: Int, onOutput: (@Sendable (OutputChunk) -> Void)?) async throws -> SandboxOutcome {
        started.withLock { $0 += 1 }
        try? await Task.sleep(for: .seconds(30))
        if Task.isCancelled { cancelled.withLock { $0 += 1 } }
        return SandboxOutcome(waitStatus: nil, timedOut: false, oomKilled: false, output: OutputCollector(maxBytes: 10, maxLines: 10),
                              wallNs: 1, cpuNs: 1, memoryPeakBytes: 1)
    }
}

/// A started RunService of the default config's languages (all "1.0") and a pool of 2 on `backend`,
/// its slots ready.
func testService(_ backend: some SandboxBackend, configure: (inout CodesandConfig) -> Void = { _ in }) async throws -> RunService {
    var config = try CodesandConfig.defaults()
    config.poolSize = 2
    config.maxRunning = 2  // all of the pool at once
    configure(&config)
    let languages = LanguageTable(entries: config.languages.map { .init(spec: $0, version: "1.0") })
    let service = RunService(config: config, languages: languages, backend: backend, version: "test", logger: quietLogger)
    service.start()
    _ = await service.waitUntilReady()
    return service
}

/// Logs only what is critical: the tests provoke errors on purpose.
let quietLogger: Logger = {
    var logger = Logger(label: "server-test")
    logger.logLevel = .critical
    return logger
}()
