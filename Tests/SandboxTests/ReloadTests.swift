import CodesandCore
import CodesandLinux
import CodesandProtocol
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Live updates: the pool moves to a new configuration (or image) while it serves.
final class ReloadTests: XCTestCase {
    override func setUp() async throws {
        try requireRoot()
    }

    /// Runs `code` from several clients until `stop` is set; every request must get a result.
    static func steadyLoad(_ live: LiveService, code: String, clients: Int = 3, stop: ManagedFlag) async -> [String] {
        await withTaskGroup(of: [String].self) { group in
            for _ in 0..<clients {
                group.addTask {
                    var seen: [String] = []
                    while !stop.isSet {
                        do {
                            let r = try await live.run("python3", code)
                            seen.append(r.status == .ok ? r.stdout : "status \(r.status): \(r.stderr)")
                        } catch {
                            seen.append("error \(error)")
                        }
                    }
                    return seen
                }
            }
            var all: [String] = []
            for await s in group { all += s }
            return all
        }
    }

    func test_a_reload_under_load_loses_no_request_and_the_versions_switch_over() async throws {
        let live = try await LiveService(pool: 2)
        defer { live.shutdown() }
        await live.waitUntilReady()
        XCTAssertNotEqual(live.service.languages.lookup("python3")?.version, "9.9.9")
        var next = live.config
        let python = next.languages.firstIndex { $0.name == "python3" }!
        next.languages[python].version = ["/bin/echo", "Python 9.9.9"]
        next.languages[python].env["CODESAND_GENERATION"] = "2"
        next.sandbox.hostname = "sandbox2"  // a layout change: new sandboxes are built differently
        let stop = ManagedFlag()
        async let seen = Self.steadyLoad(live, code: "import os, socket; print(os.environ.get('CODESAND_GENERATION', '1'), socket.gethostname())", stop: stop)
        try await Task.sleep(for: .milliseconds(300))
        let answer = try await PoolReloader(backend: live.backend, service: live.service, logger: testLogger).apply(next)
        try await Task.sleep(for: .milliseconds(500))
        stop.set()
        let results = await seen
        XCTAssertEqual(live.service.languages.lookup("python3")?.version, "9.9.9", "\(answer)")
        XCTAssertGreaterThan(results.count, 10)
        // Every run is all old or all new: the environment and the sandbox built for it agree.
        XCTAssertTrue(results.allSatisfy { $0 == "1 sandbox\n" || $0 == "2 sandbox2\n" }, "\(Set(results))")
        XCTAssertEqual(results.last, "2 sandbox2\n")
        XCTAssertTrue(results.contains("1 sandbox\n"))
    }

    func test_a_reload_to_a_missing_image_is_refused_and_the_old_config_keeps_serving() async throws {
        let live = try await LiveService(pool: 1)
        defer { live.shutdown() }
        await live.waitUntilReady()
        var next = live.config
        next.sandbox.rootfs = "image"
        next.sandbox.image = "/nonexistent/image"
        do {
            _ = try await PoolReloader(backend: live.backend, service: live.service, logger: testLogger).apply(next)
            XCTFail("a missing image must be refused")
        } catch {
            XCTAssertTrue("\(error)".contains("/nonexistent/image"), "\(error)")
        }
        let r = try await live.run("python3", "print('still here')")
        XCTAssertEqual(r.stdout, "still here\n")
    }

    /// Builds an image with `codesand image build` (debootstrap: a minute or two and a download),
    /// serves runs from it, and moves a loaded pool from the host to it. CI sets CODESAND_IMAGE_TEST=1.
    func test_an_image_built_by_codesand_image_build_serves_runs_and_a_reload_moves_to_it() async throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["CODESAND_IMAGE_TEST"] == "1",
                          "set CODESAND_IMAGE_TEST=1 to build a Debian image (needs debootstrap and the network)")
        // Built afresh by each test run: the test is of `codesand image build` too. The LXD tests'
        // Debian image (Tests/LXDTests/DebianImage.swift) is built from the same rootfs, at the same
        // path in the same test process: whichever comes first builds it, and it goes when the process ends.
        let image = "/var/tmp/codesand-test-image-\(getpid())"
        if !FileManager.default.fileExists(atPath: image + "/etc/codesand-image") {
            atexit { try? FileManager.default.removeItem(atPath: "/var/tmp/codesand-test-image-\(getpid())") }
            let build = try TestProcess([productsDirectory() + "/codesand", "image", "build", image, "--languages", "python3"],
                                        log: "/tmp/codesand-image-build-\(getpid()).log")
            XCTAssertEqual(build.wait(timeout: 1200), 0, build.log)
            XCTAssertTrue(FileManager.default.fileExists(atPath: image + "/etc/codesand-image"), build.log)
        }
        let live = try await LiveService(pool: 2)
        defer { live.shutdown() }
        await live.waitUntilReady()
        XCTAssertTrue(live.service.languages.names.contains("gcc"), "the host has gcc")
        var next = live.config
        next.sandbox.rootfs = "image"
        next.sandbox.image = image
        let probe = "import os; print('image' if os.path.exists('/etc/codesand-image') else 'host', os.path.exists('/usr/bin/gcc'))"
        let stop = ManagedFlag()
        async let seen = Self.steadyLoad(live, code: probe, stop: stop)
        try await Task.sleep(for: .milliseconds(300))
        _ = try await PoolReloader(backend: live.backend, service: live.service, logger: testLogger).apply(next)
        try await Task.sleep(for: .milliseconds(800))
        stop.set()
        let results = await seen
        // The image has no gcc; the host has: a run sees one system whole, never /etc of one and /usr of the other.
        XCTAssertTrue(results.allSatisfy { $0 == "host True\n" || $0 == "image False\n" }, "\(Set(results))")
        XCTAssertEqual(results.last, "image False\n")
        let names = live.service.languages.names
        XCTAssertTrue(names.contains("python3"), "\(names)")
        XCTAssertFalse(names.contains("gcc") || names.contains("java"), "only what the image holds: \(names)")
        let version = try await live.run("python3", "import sys; print(sys.version.split()[0])")
        XCTAssertEqual(version.stdout, live.service.languages.lookup("python3")!.version + "\n")
    }
}

/// A flag set once, read from many tasks.
final class ManagedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
