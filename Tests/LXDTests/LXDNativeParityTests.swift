import CodesandCore
import CodesandLinux
import CodesandProtocol
import Foundation
import Logging
import XCTest

@testable import CodesandLXD

/// The same requests through RunService on the native backend and on the LXD backend give the
/// same results (issue #15: "the same protocol, the same results"): output, exit code, status,
/// signal, truncation, timeout. `sh` snippets (dash on the host, busybox ash in the test image)
/// that mean the same in both shells.
final class LXDNativeParityTests: XCTestCase {
    nonisolated(unsafe) static var lxd: Result<PrivateLXD, any Error>?
    override class func setUp() { lxd = Result { try PrivateLXD.start() } }
    override class func tearDown() { if case .success(let l) = lxd { l.stop() } }

    static let cases: [(String, RunParams)] = [
        ("output and exit code", RunParams(language: "sh", code: "echo out; echo err >&2; exit 3")),
        ("args", RunParams(language: "sh", code: "printf '[%s]' \"$@\"; echo", args: ["a b", "", "$HOME", "c;d"])),
        ("stdin", RunParams(language: "sh", code: "while read l; do echo \"<$l>\"; done", stdin: "one\ntwo\n")),
        ("signal", RunParams(language: "sh", code: "kill -9 $$")),
        ("timeout", RunParams(language: "sh", code: "echo before; sleep 5", limits: RunLimits(wallMs: 400))),
        ("line cap", RunParams(language: "sh", code: "yes", limits: RunLimits(outputLines: 5))),
        ("byte cap", RunParams(language: "sh", code: "yes abcdefgh", limits: RunLimits(outputBytes: 1000))),
        ("no output", RunParams(language: "sh", code: "true")),
    ]

    func test_the_same_requests_give_the_same_results_on_both_backends() async throws {
        try requireRootHere()
        guard let lxd = Self.lxd else { throw XCTSkip("no LXD") }
        let lxdCfg = try LXDFixture.config(socket: try lxd.get().socket, prefix: "t-parity")
        let logger = Logger(label: "lxdtest")
        let lxdBackend = try LXDBackend(config: lxdCfg.sandbox, poolSize: 2, defaultLimits: lxdCfg.defaultLimits, logger: logger)
        var nativeCfg = try CodesandConfig.defaults()
        nativeCfg.poolSize = 2
        nativeCfg.maxRunning = 2  // all of the pool at once
        nativeCfg.sandbox.cgroupName = "codesand-parity-\(getpid())"
        nativeCfg.sandbox.stateDir = "/run/codesand-parity-\(getpid())"
        nativeCfg.sandbox.uidBase = 2_145_000_000
        let nativeBackend = try NativeBackend(config: nativeCfg.sandbox, poolSize: 2, defaultLimits: nativeCfg.defaultLimits, logger: logger)
        var services: [RunService] = []
        for (cfg, backend) in [(lxdCfg, lxdBackend as any SandboxBackend), (nativeCfg, nativeBackend as any SandboxBackend)] {
            var cfg = cfg
            cfg.poolSize = 2
            cfg.maxRunning = 2  // all of the pool at once
            cfg.languages = cfg.languages.filter { $0.name == "sh" }
            let languages = await LanguageDetector.detect(cfg.languages, backend: backend, config: cfg.sandbox, logger: logger)
            let service = RunService(config: cfg, languages: languages, backend: backend, version: "test", logger: logger)
            service.start()
            services.append(service)
        }
        let started = services, stateDir = nativeCfg.sandbox.stateDir
        addTeardownBlock {
            for s in started { s.stop() }
            await lxdBackend.shutdown()
            for slot in 0...2 { try? await lxdBackend.pool.delete(lxdBackend.pool.name(slot)) }
            await nativeBackend.shutdown()
            try? FileManager.default.removeItem(atPath: stateDir)
        }
        for s in services {
            let ready = await s.waitUntilReady(timeout: .seconds(90))
            XCTAssertTrue(ready, "\(s.status().backend): \(s.status().slots)")
        }
        let peer = PeerInfo(pid: getpid(), uid: 0, gid: 0)
        for (name, params) in Self.cases {
            let onLXD = try await services[0].run(params, peer: peer)
            let native = try await services[1].run(params, peer: peer)
            XCTAssertEqual(Seen(onLXD), Seen(native), name)
        }
    }

    /// What a result says, without the measurements that differ by machine (times, memory).
    struct Seen: Equatable, CustomStringConvertible {
        var stdout, stderr: String
        var exitCode: Int32?
        var signal: String?
        var status: RunStatus
        var truncated, timedOut, oomKilled: Bool
        init(_ r: RunResult) {
            (stdout, stderr, exitCode, signal, status) = (r.stdout, r.stderr, r.exitCode, r.signal, r.status)
            (truncated, timedOut, oomKilled) = (r.truncated, r.timedOut, r.oomKilled)
        }
        var description: String {
            "\(status) exit \(exitCode.map(String.init) ?? "-") signal \(signal ?? "-") truncated \(truncated) timedOut \(timedOut) "
                + "stdout \(stdout.debugDescription) stderr \(stderr.debugDescription)"
        }
    }

    private func requireRootHere() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root (sandboxes, LXD)") }
    }
}
