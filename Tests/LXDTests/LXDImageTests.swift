import CodesandCore
import CodesandProtocol
import Foundation
import Logging
import Synchronization
import XCTest

@testable import CodesandLXD

/// `codesand image build --lxd`, and `pool.reload` from one image to another while runs keep coming.
final class LXDImageReloadTests: XCTestCase {
    nonisolated(unsafe) static var lxd: Result<PrivateLXD, any Error>?
    override class func setUp() { lxd = Result { try PrivateLXD.start() } }
    override class func tearDown() { if case .success(let l) = lxd { l.stop() } }

    /// Two busybox images that differ in /etc/marker, imported by `codesand image build --lxd` from
    /// copies of the test image's rootfs. B's copy lacks /sbin/init, its inittab and the sandbox user:
    /// the import must add them (else its containers do not start, or runs fail as uid 1000).
    func importImages() async throws -> String {
        guard let lxd = Self.lxd, case .success(let l) = lxd, let dir = l.dir else { throw XCTSkip("needs the private LXD's busybox rootfs") }
        for (name, stripped) in [("a", false), ("b", true)] {
            let root = dir + "/img-\(name)"
            try await runTool(["/bin/cp", "-a", dir + "/img/rootfs", root])
            try "languages=sh\nsuite=busybox\n".write(toFile: root + "/etc/codesand-image", atomically: true, encoding: .utf8)
            try "\(name)\n".write(toFile: root + "/etc/marker", atomically: true, encoding: .utf8)
            if stripped {
                for f in ["/sbin/init", "/etc/inittab", "/home/sandbox"] { try FileManager.default.removeItem(atPath: root + f) }
                try "root:x:0:0:root:/root:/bin/sh\n".write(toFile: root + "/etc/passwd", atomically: true, encoding: .utf8)
                try "root:x:0:\n".write(toFile: root + "/etc/group", atomically: true, encoding: .utf8)
            }
            try await runCodesand(["image", "build", "--lxd", "reload-\(name)", root, "--lxd-socket", l.socket],
                                  log: dir + "/import-\(name).log", timeout: 300)
        }
        let b = dir + "/img-b"
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: b + "/sbin/init"), "/usr/lib/codesand/busybox")
        XCTAssertTrue(try String(contentsOfFile: b + "/etc/passwd", encoding: .utf8).contains("sandbox:x:1000:1000:"))
        let client = LXDClient(socketPath: l.socket)
        let fingerprint = try await client.imageAlias("reload-b")
        let props = try await client.imageProperties(XCTUnwrap(fingerprint))
        XCTAssertEqual(props["codesand.image_version"], LXDImage.layoutVersion)
        XCTAssertEqual(props["codesand.languages"], "sh")
        return l.socket
    }

    func test_a_reload_to_another_image_replaces_containers_one_by_one_while_serving() async throws {
        let socket = try await importImages()
        var cfg = try LXDFixture.config(socket: socket, prefix: "t-swap")
        cfg.sandbox.lxd.image = "reload-a"
        cfg.poolSize = 3
        let logger = Logger(label: "lxdtest")
        let backend = try LXDBackend(config: cfg.sandbox, poolSize: 3, defaultLimits: cfg.defaultLimits, logger: logger)
        let languages = await LanguageDetector.detect(cfg.languages, backend: backend, config: cfg.sandbox, logger: logger)
        let service = RunService(config: cfg, languages: languages, backend: backend, version: "test", logger: logger)
        addTeardownBlock {
            service.stop()
            await backend.shutdown()
            for slot in 0...3 { try? await backend.pool.delete(backend.pool.name(slot)) }
        }
        service.start()
        let ready = await service.waitUntilReady(timeout: .seconds(60))
        XCTAssertTrue(ready, "\(service.status().slots)")

        // A steady load (a run every second, as chat messages come), and the free slots sampled every
        // 5 ms: the longest time without one, before the reload (what restores of ~1 s, slower on a busy
        // machine, cost under this load) and after it.
        let shared = ReloadLoadState()
        let sampler = Task.detached { () -> (before: Int64, after: Int64, samples: Int) in
            var longest: [Int64] = [0, 0]
            var samples = 0
            var emptySince: ContinuousClock.Instant?
            while !shared.stop.load(ordering: .relaxed) {
                let now = ContinuousClock.now
                let phase = shared.reloadedAt.withLock({ $0 }) == nil ? 0 : 1
                samples += phase
                if service.pool.scheduler.available == 0 {
                    if emptySince == nil { emptySince = now }
                    longest[phase] = max(longest[phase], milliseconds(since: emptySince!))
                } else {
                    emptySince = nil
                }
                try? await Task.sleep(for: .milliseconds(5))
            }
            return (longest[0], longest[1], samples)
        }
        let load = Task.detached { () -> [String] in
            var seen: [String] = []
            while !shared.stop.load(ordering: .relaxed) {
                do {
                    let r = try await service.run(RunParams(language: "sh", code: "cat /etc/marker; id -u; cat /etc/marker"),
                                                  peer: PeerInfo(pid: getpid(), uid: 0, gid: 0))
                    seen.append(r.stdout)
                } catch {
                    seen.append("error: \(error)")
                }
                // Eventually every run sees B: stop 8 runs after the last A (or after two minutes).
                if let at = shared.reloadedAt.withLock({ $0 }) {
                    if seen.suffix(8).allSatisfy({ $0 == "b\n1000\nb\n" }) && seen.count > 8 { break }
                    if ContinuousClock.now - at > .seconds(120) { break }
                }
                try? await Task.sleep(for: .seconds(1))
            }
            return seen
        }
        try await Task.sleep(for: .seconds(6))
        var next = cfg
        next.sandbox.lxd.image = "reload-b"
        shared.reloadedAt.withLock { $0 = .now }
        let reloadStart = ContinuousClock.now
        _ = try await PoolReloader(backend: backend, service: service, logger: logger).apply(next)
        let seen = await load.value
        let reloadMs = milliseconds(since: reloadStart)
        shared.stop.store(true, ordering: .relaxed)
        let (emptyBeforeMs, emptyAfterMs, samples) = await sampler.value

        XCTAssertTrue(seen.allSatisfy { $0 == "a\n1000\na\n" || $0 == "b\n1000\nb\n" }, "every run answered, from one image whole: \(seen)")
        XCTAssertEqual(seen.suffix(8), Array(repeating: "b\n1000\nb\n", count: 8), "eventually every run sees B: \(seen)")
        XCTAssertEqual(seen.first, "a\n1000\na\n")
        let replacements = backend.pool.replacements
        XCTAssertEqual(replacements.map(\.slot).sorted(), [0, 1, 2], "each slot's container replaced once")
        XCTAssertEqual((0..<3).filter { backend.isOutdated(slot: $0) == true }, [])
        // One by one: a replacement starts after the one before it has ended.
        for (a, b) in zip(replacements, replacements.dropFirst()) {
            XCTAssertGreaterThanOrEqual(b.start, a.end, "replacements of slots \(a.slot) and \(b.slot) overlapped")
        }
        // The reload never left the pool without a free slot for longer than one container's
        // replacement on top of what the load's restores cost before it.
        let slowest = replacements.map(\.ms).max() ?? 0
        XCTAssertLessThanOrEqual(emptyAfterMs, emptyBeforeMs + slowest,
                                 "longest time without a free slot after the reload vs before it + the slowest replacement")
        XCTAssertGreaterThan(samples, 100)
        print("reload A→B: \(seen.count) runs, \(reloadMs) ms until 8 runs in a row saw B; replacements \(replacements.map(\.ms)) ms; "
              + "longest time without a free slot \(emptyBeforeMs) ms before the reload, \(emptyAfterMs) ms after")
    }

    func test_a_reload_to_an_image_or_source_lxd_does_not_have_is_refused() async throws {
        guard let lxd = Self.lxd else { throw XCTSkip("no LXD") }
        var cfg = try LXDFixture.config(socket: try lxd.get().socket, prefix: "t-refuse")
        let backend = try LXDBackend(config: cfg.sandbox, poolSize: 1, defaultLimits: cfg.defaultLimits, logger: Logger(label: "lxdtest"))
        addTeardownBlock { await backend.shutdown() }
        cfg.sandbox.lxd.image = "no-such-image"
        do {
            _ = try await backend.addGeneration(cfg)
            XCTFail("a reload to a missing image was taken")
        } catch {
            XCTAssertTrue("\(error)".contains("no-such-image"), "\(error)")
        }
        cfg.sandbox.lxd.image = ""
        cfg.sandbox.lxd.source = "no-such-container/clean"
        do {
            _ = try await backend.addGeneration(cfg)
            XCTFail("a reload to a missing source was taken")
        } catch {
            XCTAssertTrue("\(error)".contains("no-such-container/clean"), "\(error)")
        }
        XCTAssertEqual(backend.pool.spec.lxd.image, "codesand-test", "the old spec stays")
    }

    private func runTool(_ argv: [String]) async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw LXDTestError("\(argv.joined(separator: " ")) failed") }
    }
}

/// What the load and the sampler share with the test: when the reload began, and when to stop.
final class ReloadLoadState: Sendable {
    let stop = Atomic<Bool>(false)
    let reloadedAt = Mutex<ContinuousClock.Instant?>(nil)
}

/// python3 on the LXD backend, in the Debian image that `codesand image build --lxd` imports (CI builds it).
final class LXDDebianImageTests: XCTestCase {
    nonisolated(unsafe) static var lxd: Result<PrivateLXD, any Error>?
    override class func setUp() { lxd = Result { try PrivateLXD.start() } }
    override class func tearDown() { if case .success(let l) = lxd { l.stop() } }

    func test_python3_runs_in_the_debian_image_with_the_images_languages() async throws {
        guard let lxd = Self.lxd else { throw XCTSkip("no LXD") }
        let socket = try lxd.get().socket
        try await DebianImage.ensure(lxdSocket: socket)
        var cfg = try LXDFixture.config(socket: socket, prefix: "t-deb")
        cfg.sandbox.lxd.image = "codesand-debian"
        cfg.poolSize = 1
        let logger = Logger(label: "lxdtest")
        let backend = try LXDBackend(config: cfg.sandbox, poolSize: 1, defaultLimits: cfg.defaultLimits, logger: logger)
        let languages = await LanguageDetector.detect(cfg.languages, backend: backend, config: cfg.sandbox, logger: logger)
        let service = RunService(config: cfg, languages: languages, backend: backend, version: "test", logger: logger)
        addTeardownBlock {
            service.stop()
            await backend.shutdown()
            for slot in 0...1 { try? await backend.pool.delete(backend.pool.name(slot)) }
        }
        service.start()
        let ready = await service.waitUntilReady(timeout: .seconds(300))
        XCTAssertTrue(ready, "\(service.status().slots)")
        // What the image holds, probed in a container: python3, not the host's compilers.
        let names = service.languages.names
        XCTAssertTrue(names.contains("python3"), "\(names)")
        XCTAssertFalse(names.contains("gcc") || names.contains("ruby") || names.contains("java"), "only the image's: \(names)")
        let peer = PeerInfo(pid: getpid(), uid: 0, gid: 0)

        let code = """
            import os, sys
            print(open('/etc/codesand-image').read().split()[0], os.getuid(), os.getcwd(), input())
            sys.exit(4)
            """
        let r = try await service.run(RunParams(language: "python3", code: code, stdin: "from stdin\n"), peer: peer)
        XCTAssertEqual(r.stdout, "languages=python3 1000 /home/sandbox from stdin\n", r.stderr)
        XCTAssertEqual(r.exitCode, 4)
        XCTAssertEqual(r.status, .error)

        let version = try await service.run(RunParams(language: "python3", code: "import sys; print(sys.version.split()[0])"), peer: peer)
        XCTAssertEqual(version.stdout, service.languages.lookup("python3")!.version + "\n")

        let spin = try await service.run(RunParams(language: "python3", code: "while True: pass", limits: RunLimits(wallMs: 1000)), peer: peer)
        XCTAssertEqual(spin.status, .timeout)
        XCTAssertLessThan(spin.wallMs, 1200)
    }
}
