import CodesandCore
import CodesandProtocol
import Foundation
import Logging
import Synchronization
import XCTest

@testable import CodesandLinux

#if canImport(Glibc)
import Glibc
#endif

/// Real sandboxes need root (namespaces, mounts, cgroups). CI runs as root, so these always run there.
func requireRoot() throws {
    try XCTSkipUnless(getuid() == 0, "needs root: creates namespaces, mounts and cgroups")
}

/// A config private to this test process: its own cgroup name, state dir and uids, so tests never
/// touch a daemon running on the same machine.
func testConfig(pool: Int = 2, name: String = "") throws -> CodesandConfig {
    var c = try CodesandConfig.defaults()
    c.poolSize = pool
    c.maxRunning = pool  // all of the pool at once
    c.sandbox.cgroupName = "codesand-test-\(getpid())\(name)"
    c.sandbox.stateDir = "/run/codesand-test-\(getpid())\(name)"
    // No two test processes (or two services in one test) share uids.
    c.sandbox.uidBase = 2_147_000_000 + UInt32(getpid() % 10_000) * 64 + (name.hasPrefix("-cold") ? 32 : 0)
    c.queueMaxWaitMs = 30_000
    return c
}

let testLogger: Logger = {
    var l = Logger(label: "codesand-test")
    l.logLevel = .warning
    return l
}()

/// A RunService on the real native backend.
final class LiveService: Sendable {
    let config: CodesandConfig
    let backend: NativeBackend
    let service: RunService

    /// Detects the languages (as the daemon does at start), then starts preparing the pool.
    /// Each service gets cgroups of its own: a stopped service's last prepare may still be tearing
    /// down a sandbox in its cgroup, which must never be the next service's.
    static let counter = Mutex(0)

    init(pool: Int = 2, name: String = "", configure: (inout CodesandConfig) -> Void = { _ in }) async throws {
        let n = Self.counter.withLock { n in n += 1; return n }
        var c = try testConfig(pool: pool, name: name.isEmpty ? "-\(n)" : "-\(name)-\(n)")
        configure(&c)
        config = c
        backend = try NativeBackend(config: c.sandbox, poolSize: c.poolSize, defaultLimits: c.defaultLimits, logger: testLogger)
        let langs = await LanguageDetector.detect(c.languages, backend: backend, config: c.sandbox, logger: testLogger)
        service = RunService(config: c, languages: langs, backend: backend, version: "test", logger: testLogger)
        service.start()
    }

    func waitUntilReady() async {
        let ok = await service.waitUntilReady()
        let status = service.status()
        XCTAssertTrue(ok, "the pool did not get ready: \(status.slots), broken: \(status.brokenSlots ?? [])")
    }

    func run(_ language: String, _ code: String, stdin: String? = nil, args: [String]? = nil,
             limits: RunLimits? = nil) async throws -> RunResult {
        try await service.run(RunParams(language: language, code: code, stdin: stdin, args: args, limits: limits),
                              peer: PeerInfo(pid: getpid(), uid: 0, gid: 0))
    }

    /// Processes in the slots' cgroups once every used slot has been reset (a run's leftovers die
    /// at its end; their teardown happens after the reply, before the slot is ready again).
    func leftoverPids() async -> [pid_t] {
        await waitUntilReady()
        return backend.leftoverProcesses()
    }

    func shutdown() {
        backend.shutdown()
        // What the compile cache kept (state_dir/compile-cache) would pile up in /run, test after test.
        try? FileManager.default.removeItem(atPath: config.sandbox.stateDir + "/compile-cache")
    }
}

/// A test case with a live pool of its own for each test; after each test, nothing may be left in
/// the pool's cgroups. Subclasses choose the pool size and configuration.
class LiveServiceTestCase: XCTestCase {
    var live: LiveService!
    var poolSize: Int { 2 }
    func configure(_ config: inout CodesandConfig) {}

    override func setUp() async throws {
        try requireRoot()
        live = try await LiveService(pool: poolSize) { configure(&$0) }
        await live.waitUntilReady()
    }

    override func tearDown() async throws {
        guard let live else { return }
        defer { live.shutdown() }
        let leftovers = await live.leftoverPids()
        XCTAssertEqual(leftovers, [], "processes left in the pool's cgroups")
    }
}

/// Processes on the whole host whose command line contains `needle` (like `pgrep -f`).
func hostProcesses(matching needle: String) -> [pid_t] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap { name -> pid_t? in
        guard let pid = pid_t(name), pid != getpid(),
              let data = FileManager.default.contents(atPath: "/proc/\(name)/cmdline") else { return nil }
        let cmd = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        return cmd.contains(needle) ? pid : nil
    }
}

/// Processes of sandbox users (uid 2,000,000,000 and up: every uid_base the tests use) whose
/// command line contains `needle`: what a snippet left running. Other sessions' processes on the
/// same host (a `sleep 300` of someone's script) are not looked at.
func sandboxUserProcesses(matching needle: String) -> [pid_t] {
    hostProcesses(matching: needle).filter { pid in
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }),
              let uid = line.split(separator: "\t").dropFirst().first.flatMap({ UInt32($0) }) else { return false }
        return uid >= 2_000_000_000
    }
}

func elapsed<T>(_ body: () async throws -> T) async rethrows -> (T, Double) {
    let start = ContinuousClock.now
    let r = try await body()
    let d = ContinuousClock.now - start
    return (r, Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
}
