import CodesandCore
import Foundation
import Logging
import XCTest

@testable import CodesandLXD

/// A private LXD for the tests (scripts/lxd-test-env): its own LXD_DIR under /tmp, a `dir` pool,
/// no network, the busybox image `codesand-test`. Started once per test class, stopped by its pid.
/// `CODESAND_LXD_SOCKET` points the tests at an LXD already running instead (a developer's).
struct PrivateLXD {
    let socket: String
    let dir: String?
    let pid: String?
    /// With `start(options:)` `--https ADDR:PORT`: where it listens, and its server certificate's SHA-256.
    var https: String? = nil
    var fingerprint: String? = nil

    /// `cluster`: a two-member cluster (lxd-test-env start-cluster: m1 on 127.0.0.11:8443, whose
    /// socket this is, and m2 on 127.0.0.12:8443). `options`: lxd-test-env start's (`--https
    /// ADDR:PORT`, `--trust CERT.pem`); `name` tells this LXD's directory from another one started
    /// by the same test process.
    static func start(cluster: Bool = false, options: [String] = [], name: String = "lxdtest") throws -> PrivateLXD {
        if !cluster, options.isEmpty, let socket = ProcessInfo.processInfo.environment["CODESAND_LXD_SOCKET"] {
            return PrivateLXD(socket: socket, dir: nil, pid: nil)
        }
        guard getuid() == 0 else { throw XCTSkip("needs root (LXD)") }
        let dir = "/tmp/codesand-\(name)-\(getpid())" + (cluster ? "-cluster" : "")
        try script([cluster ? "start-cluster" : "start", dir] + options)
        let out = (try? String(contentsOfFile: dir + "/env", encoding: .utf8)) ?? ""
        var fields: [String: String] = [:]
        for line in out.split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
        }
        guard let socket = fields["socket"], let pid = fields["pid"] else {
            throw LXDTestError("lxd-test-env start said: \(out)")
        }
        return PrivateLXD(socket: socket, dir: dir, pid: pid, https: fields["https"], fingerprint: fields["fingerprint"])
    }

    func stop() {
        guard let dir, let pid else { return }
        try? Self.script(["stop", dir, pid])
    }

    /// A cluster's member m2: `lxd shutdown` (until its daemon is gone), or started again.
    func stopMember() throws { try Self.script(["stop-member", dir!]) }
    func startMember() throws { try Self.script(["start-member", dir!]) }

    /// Runs scripts/lxd-test-env with `args` (an argv: no shell). Its output goes to the test's: a
    /// pipe would stay open as long as the LXD daemon it starts (which inherits it).
    static func script(_ args: [String]) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let p = Process()
        p.executableURL = root.appendingPathComponent("scripts/lxd-test-env")
        p.arguments = args
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw LXDTestError("lxd-test-env \(args.first ?? "") failed (\(p.terminationStatus)): see its output") }
    }
}

struct LXDTestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A backend on the private LXD, and jobs for it.
enum LXDFixture {
    static func config(socket: String, prefix: String) throws -> CodesandConfig {
        var cfg = try CodesandConfig.defaults()
        cfg.sandbox.backend = "lxd"
        cfg.sandbox.lxd.socket = socket
        cfg.sandbox.lxd.image = "codesand-test"
        cfg.sandbox.lxd.prefix = prefix
        return cfg
    }

    static func backend(socket: String, prefix: String, poolSize: Int) throws -> LXDBackend {
        let cfg = try config(socket: socket, prefix: prefix)
        return try LXDBackend(config: cfg.sandbox, poolSize: poolSize, defaultLimits: cfg.defaultLimits,
                              logger: Logger(label: "lxdtest"))
    }

    static func job(_ code: String, stdin: String = "", wallMs: Int64 = 5000, outputBytes: Int64 = 65536) throws -> SandboxJob {
        let cfg = try CodesandConfig.defaults()
        var limits = cfg.defaultLimits
        limits.wallMs = wallMs
        limits.cpuMs = wallMs
        limits.outputBytes = outputBytes
        limits.outputLines = 1 << 20  // the byte cap is the one tests aim at
        let env = cfg.sandbox.env.keys.sorted().map { "\($0)=\(cfg.sandbox.env[$0]!)" }
        return SandboxJob(argv: ["/bin/sh", "/home/sandbox/main.sh"], env: env, fileName: "main.sh", code: Array(code.utf8),
                          stdin: Array(stdin.utf8), limits: limits)
    }
}

extension StageOutcome {
    var stdout: String { output.texts().stdout }
    var stderr: String { output.texts().stderr }
    var exitCode: Int32? { waitStatus.flatMap { $0 & 0x7f == 0 ? ($0 >> 8) & 0xff : nil } }
}
