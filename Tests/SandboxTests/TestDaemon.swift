import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The real `codesandd` binary on a socket of its own, with cgroups, state dir and uids no other
/// daemon or test uses. `extraConfig` is TOML added to the config (tables other than `[pool]`,
/// `[sandbox]` and `[limits.max]`, which the fixture writes).
final class TestDaemon {
    let dir: String
    let socket: String
    let process: TestProcess

    /// `argvPrefix` runs the daemon through another program (e.g. `prlimit --nofile=…`).
    init(pool: Int = 2, extraConfig: String = "", argvPrefix: [String] = []) throws {
        try requireRoot()
        let name = "codesand-rtest-\(getpid())-\(UInt32.random(in: 0...99_999))"
        dir = "/tmp/\(name)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let uidBase = 2_145_000_000 + UInt32.random(in: 0...99_999) * 8
        try """
        [pool]
        size = \(pool)
        spare = 0
        [sandbox]
        cgroup_name = "\(name)"
        state_dir = "\(dir)/state"
        uid_base = \(uidBase)
        [limits.max]
        wall_ms = 5000
        \(extraConfig)
        """.write(toFile: "\(dir)/config.toml", atomically: true, encoding: .utf8)
        socket = "\(dir)/codesand.sock"
        process = try TestProcess(argvPrefix + [productsDirectory() + "/codesandd", "--config", "\(dir)/config.toml", "--socket", socket],
                                  log: "\(dir)/daemon.log")
        XCTAssertTrue(waitForSocket(socket), "no socket: \(process.log)")
    }

    var pid: pid_t { process.pid }
    var log: String { process.log }

    /// SIGTERM, and the exit status (nil: still running after `timeout` seconds).
    @discardableResult
    func stop(timeout: Double = 30) -> Int32? {
        process.signal(SIGTERM)
        return process.wait(timeout: timeout)
    }

    deinit {
        if process.wait(timeout: 0) == nil { stop() }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Open file descriptors of the daemon.
    var openFDs: Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1 }

    /// The lowest fd number the daemon has free: the next one the kernel would give it.
    var lowestFreeFD: Int {
        let used = Set(((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap { Int($0) })
        return (0...).first { !used.contains($0) }!
    }

    /// The daemon's hard RLIMIT_NOFILE (/proc/PID/limits, "Max open files").
    var hardFileLimit: String {
        let text = procFile("/proc/\(pid)/limits")
        let line = text.split(separator: "\n").first { $0.hasPrefix("Max open files") } ?? ""
        return line.split(separator: " ", omittingEmptySubsequences: true).dropFirst(4).first.map(String.init) ?? "unlimited"
    }

    /// CPU time the daemon has used so far (user + system), in seconds.
    var cpuSeconds: Double {
        let stat = procFile("/proc/\(pid)/stat")
        guard let close = stat.lastIndex(of: ")") else { return -1 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After "pid (comm)": state is field 3, utime 14 and stime 15 (1-based in proc(5)).
        let ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// A /proc file's text (its size is 0 to stat: read to the end, not by size).
func procFile(_ path: String) -> String {
    guard let h = FileHandle(forReadingAtPath: path) else { return "" }
    defer { try? h.close() }
    return String(decoding: (try? h.readToEnd()) ?? Data(), as: UTF8.self)
}

/// A `run` request line for python3.
func runRequest(id: Int, _ code: String, extra: String = "") -> String {
    let codeJSON = String(decoding: try! JSONEncoder().encode(code), as: UTF8.self)
    return #"{"jsonrpc":"2.0","id":\#(id),"method":"run","params":{"language":"python3","code":\#(codeJSON)\#(extra)}}"#
}
