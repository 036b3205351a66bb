import Foundation
import XCTest

/// The Debian image in a private LXD, for runs of real interpreters (python3) on the LXD backend: the
/// root filesystem `codesand image build` makes (debootstrap), with a PID 1 (minbase has no
/// /sbin/init: busybox-static's init, idling and reaping) and the sandbox user, imported as `alias`.
/// Gated as the native image test is (CODESAND_IMAGE_TEST=1, root): it needs debootstrap and
/// Debian's mirror. The rootfs is kept in /var/tmp between runs (debootstrap takes a minute or two).
/// (A stopgap until `codesand image build --lxd` makes the image itself.)
enum DebianImage {
    static let rootfsCache = "/var/tmp/codesand-lxd-debian-rootfs"

    static func ensure(lxdSocket: String, alias: String = "codesand-debian") async throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["CODESAND_IMAGE_TEST"] == "1",
                          "set CODESAND_IMAGE_TEST=1 to build a Debian image (needs debootstrap and the network)")
        guard getuid() == 0 else { throw XCTSkip("needs root (debootstrap, LXD)") }
        let lxdDir = URL(fileURLWithPath: lxdSocket).deletingLastPathComponent().path
        let work = "/var/tmp/codesand-lxd-debian-import-\(getpid())"
        let env = ["LXD_DIR": lxdDir, "LXD_CONF": work + "/lxc-conf"]
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        if try command(["/usr/bin/lxc", "image", "info", alias], env: env, log: work + "/info.log") == 0 { return }
        let rootfs = try buildRootfs()
        let metadata = "architecture: \(try machine())\ncreation_date: \(Int(Date().timeIntervalSince1970))\n"
            + "properties:\n  description: codesand Debian image (tests)\n  os: debian\n  release: bookworm\n"
        try metadata.write(toFile: work + "/metadata.yaml", atomically: true, encoding: .utf8)
        try check(["/bin/tar", "-C", work, "-czf", work + "/meta.tar.gz", "metadata.yaml"], log: work + "/tar.log")
        try check(["/bin/tar", "-C", rootfs, "--numeric-owner", "-cf", work + "/rootfs.tar", "."], log: work + "/tar.log")
        try check(["/usr/bin/lxc", "image", "import", work + "/meta.tar.gz", work + "/rootfs.tar", "--alias", alias],
                  env: env, log: work + "/import.log")
    }

    /// The cached rootfs, built first if it is not there (or not whole: the marker is written last).
    private static func buildRootfs() throws -> String {
        let marker = rootfsCache + "/etc/codesand-lxd-ready"
        if FileManager.default.fileExists(atPath: marker) { return rootfsCache }
        let building = rootfsCache + ".building"
        try? FileManager.default.removeItem(atPath: building)
        try? FileManager.default.removeItem(atPath: rootfsCache)
        try check([productsDirectory() + "/codesand", "image", "build", building, "--languages", "python3"],
                  log: "/tmp/codesand-lxd-debian-build-\(getpid()).log")
        // PID 1: busybox's init with an inittab that only syncs at shutdown idles and reaps orphans.
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: building + "/sbin/init")
        try "::shutdown:/bin/sync\n".write(toFile: building + "/etc/inittab", atomically: true, encoding: .utf8)
        try append("sandbox:x:1000:1000:sandbox:/home/sandbox:/bin/sh\n", to: building + "/etc/passwd")
        try append("sandbox:x:1000:\n", to: building + "/etc/group")
        try FileManager.default.createDirectory(atPath: building + "/home/sandbox", withIntermediateDirectories: true)
        try "lxd\n".write(toFile: building + "/etc/codesand-lxd-ready", atomically: true, encoding: .utf8)
        try FileManager.default.moveItem(atPath: building, toPath: rootfsCache)
        return rootfsCache
    }

    private static func append(_ line: String, to path: String) throws {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        guard !text.contains(line) else { return }
        try (text + line).write(toFile: path, atomically: true, encoding: .utf8)
    }

    private static func machine() throws -> String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    private static func check(_ argv: [String], env: [String: String] = [:], log: String) throws {
        let status = try command(argv, env: env, log: log)
        guard status == 0 else {
            let tail = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").suffix(2000)
            throw LXDTestError("\(argv.prefix(3).joined(separator: " ")) failed (\(status)): \(tail)")
        }
    }

    /// Runs `argv` (no shell) with its output appended to `log`; its exit status.
    private static func command(_ argv: [String], env: [String: String], log: String) throws -> Int32 {
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        defer { try? out.close() }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = out
        p.standardError = out
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// Where the build's products are: the test runner is .build/<triple>/debug/codesandPackageTests.xctest.
    private static func productsDirectory() -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().path
    }
}
