import CodesandLXD
import Foundation
import XCTest

/// The Debian image with python3 in a test LXD (`codesand-debian`): the root filesystem that
/// `codesand image build --languages python3` makes (debootstrap: a minute or two and a download),
/// imported with `codesand image build --lxd`. Gated like the native image test: CODESAND_IMAGE_TEST=1
/// (scripts/test sets it, so CI runs it) and root. The rootfs is built once per test process, at the
/// path the native image test (SandboxTests/ReloadTests) uses too, and removed when the process exits.
enum DebianImage {
    /// Returns once `alias` names an image with python3 in the LXD at `lxdSocket` (imported now if it does not).
    static func ensure(lxdSocket: String, alias: String = "codesand-debian") async throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["CODESAND_IMAGE_TEST"] == "1",
                          "set CODESAND_IMAGE_TEST=1 to build a Debian image (needs debootstrap and the network)")
        try XCTSkipUnless(getuid() == 0, "needs root (debootstrap, LXD)")
        try await Builds.shared.ensure(lxdSocket: lxdSocket, alias: alias)
    }

    /// The rootfs of this test process (shared with the native image test).
    static var rootfs: String { "/var/tmp/codesand-test-image-\(getpid())" }

    /// One import at a time (test classes may ask in turn; the build is long). Whether the image is
    /// there is asked of LXD each time: test classes each start a private LXD, at the same path.
    actor Builds {
        static let shared = Builds()

        func ensure(lxdSocket: String, alias: String) async throws {
            let client = LXDClient(socketPath: lxdSocket)
            if let fingerprint = try await client.imageAlias(alias),
               try await client.imageProperties(fingerprint)["codesand.languages"]?.split(separator: ",").contains("python3") == true {
                return
            }
            let dir = DebianImage.rootfs
            if !FileManager.default.fileExists(atPath: dir + "/etc/codesand-image") {
                atexit { try? FileManager.default.removeItem(atPath: DebianImage.rootfs) }
            }
            // Builds the rootfs unless the native image test built it already, then imports it.
            try await runCodesand(["image", "build", "--lxd", alias, dir, "--languages", "python3", "--lxd-socket", lxdSocket],
                            log: "/tmp/codesand-debian-image-\(getpid()).log", timeout: 1800)
        }
    }

    /// The `codesand` built beside the test runner (.build/<triple>/debug/codesandPackageTests.xctest).
    static var codesand: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("codesand").path
    }
}

/// Runs `codesand ARGS` (an argv: no shell) with its output in `log`; throws with the log's end if it
/// fails or takes longer than `timeout` seconds (then it is killed).
func runCodesand(_ args: [String], log: String, timeout: Double) async throws {
    _ = FileManager.default.createFile(atPath: log, contents: nil)
    guard let out = FileHandle(forWritingAtPath: log) else { throw LXDTestError("cannot write \(log)") }
    defer { try? out.close() }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: DebianImage.codesand)
    p.arguments = args
    p.standardOutput = out
    p.standardError = out
    p.standardInput = FileHandle.nullDevice
    let killer = Task {
        try await Task.sleep(for: .seconds(timeout))
        p.terminate()
    }
    defer { killer.cancel() }
    try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
        p.terminationHandler = { _ in done.resume() }
        do { try p.run() } catch { done.resume(throwing: error) }
    }
    guard p.terminationStatus == 0 else {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        throw LXDTestError("codesand \(args.joined(separator: " ")) failed (\(p.terminationStatus)): \(text.suffix(2000))")
    }
}
