@testable import CodesandCore
import CodesandProtocol
import Logging
import XCTest

/// `pool.reload` through any backend: what is asked of the backend, what the answer says, and that
/// a refused config changes nothing. (SandboxTests.ReloadTests move a real pool under load.)
final class PoolReloaderTests: XCTestCase {
    let logger = Logger(label: "test")

    func makeService(_ backend: FakeBackend) async throws -> (RunService, CodesandConfig) {
        var config = try CodesandConfig.defaults()
        config.poolSize = 1
        config.maxRunning = 1  // all of the pool at once
        let languages = await LanguageDetector.detect(config.languages, backend: backend, config: config.sandbox, logger: logger)
        let service = RunService(config: config, languages: languages, backend: backend, version: "test", logger: logger)
        service.start()
        _ = await service.waitUntilReady()
        return (service, config)
    }

    func test_languages_come_from_the_backends_system_with_the_versions_its_probes_answer() async throws {
        let backend = FakeBackend()
        let config = try CodesandConfig.defaults()
        let python = try XCTUnwrap(config.languages.first { $0.name == "python3" })
        let perl = try XCTUnwrap(config.languages.first { $0.name == "perl" })
        backend.installed.withLock { $0 = [python.run[0]] }
        backend.probeAnswers.withLock { $0[python.version] = "Python 3.99.1\n" }
        let table = await LanguageDetector.detect(config.languages, backend: backend, config: config.sandbox, logger: logger)
        XCTAssertEqual(table.lookup("python3")?.version, "3.99.1")
        XCTAssertNil(table.lookup("perl"), "\(perl.run[0]) is not installed in the backend's system")
    }

    func test_a_reload_hands_the_config_to_the_backend_and_runs_use_the_new_generation() async throws {
        let backend = FakeBackend()
        let (service, old) = try await makeService(backend)
        defer { service.stop() }
        var next = old
        (next.poolSize, next.maxRunning) = (old.poolSize + 3, old.maxRunning + 3)  // pool.size
        next.socketPath = "/run/elsewhere.sock"
        next.sandbox.hostname = "sandbox2"
        let python = try XCTUnwrap(next.languages.first { $0.name == "python3" })
        backend.probeAnswers.withLock { $0[python.version] = "Python 3.42.0" }
        let answer = try await PoolReloader(backend: backend, service: service, logger: logger).apply(next)
        XCTAssertEqual(backend.generations.withLock { $0.map(\.sandbox.hostname) }, ["sandbox2"])
        XCTAssertEqual(answer.rootfs, next.sandbox.rootfs)
        XCTAssertTrue(answer.languages.contains(.init(name: "python3", version: "3.42.0")), "\(answer.languages)")
        XCTAssertEqual(Set(answer.needsRestart), ["pool.size", "socket"])
        XCTAssertEqual(service.languages.lookup("python3")?.version, "3.42.0")
        _ = try await service.run(RunParams(language: "python3", code: "print(1)"), peer: PeerInfo(pid: 1, uid: 0, gid: 0))
        XCTAssertEqual(backend.runGenerations.withLock { $0.last }, 1, "a run after the reload uses the new generation")
        let wire = String(decoding: try JSONEncoder().encode(answer), as: UTF8.self)
        XCTAssertTrue(wire.contains("\"needs_restart\""), wire)
    }

    func test_a_config_the_backend_refuses_changes_nothing() async throws {
        let backend = FakeBackend()
        let (service, old) = try await makeService(backend)
        defer { service.stop() }
        let before = service.languages.infos
        backend.refuseConfig.withLock { $0 = "image /nonexistent is not there" }
        var next = old
        next.languages.removeAll { $0.name == "python3" }
        do {
            _ = try await PoolReloader(backend: backend, service: service, logger: logger).apply(next)
            XCTFail("the refused config was applied")
        } catch {
            XCTAssertTrue("\(error)".contains("/nonexistent"), "\(error)")
        }
        XCTAssertEqual(service.languages.infos, before)
        _ = try await service.run(RunParams(language: "python3", code: "print(1)"), peer: PeerInfo(pid: 1, uid: 0, gid: 0))
        XCTAssertEqual(backend.runGenerations.withLock { $0.last }, 0)
    }
}
