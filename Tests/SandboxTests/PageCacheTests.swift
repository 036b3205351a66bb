import CodesandCore
import CodesandProtocol
import Foundation
import Glibc
import XCTest

/// A sandbox's teardown must not evict the host's page cache. A host file a sandbox reads first is
/// charged to its slot's cgroup; forcing that charge out evicted the file for every reader, and the
/// next sandbox to start the same interpreter read it from disk again (node: ~8 ms of CPU per start).
final class PageCacheTests: LiveServiceTestCase {
    /// A host file visible in every sandbox, of 1–6 MiB (under hostFileCacheKept), mapped by no one
    /// (a mapped page is not dropped by POSIX_FADV_DONTNEED).
    static func smallHostFile() -> String? {
        let fm = FileManager.default
        for root in ["/usr/share/go-1.19", "/usr/share/doc", "/usr/share"] {
            guard let walk = fm.enumerator(atPath: root) else { continue }
            var seen = 0
            while let name = walk.nextObject() as? String, seen < 200_000 {
                seen += 1
                let path = root + "/" + name
                var st = stat()
                guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG,
                      (1 << 20)...(6 << 20) ~= st.st_size, !name.hasSuffix(".so") else { continue }
                return path
            }
        }
        return nil
    }

    /// The share of `path`'s pages in the host's page cache (mincore).
    static func resident(_ path: String) throws -> Double {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SandboxTestError("open \(path)") }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        let size = Int(st.st_size), page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard let map = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else { throw SandboxTestError("mmap") }
        defer { munmap(map, size) }
        var vec = [UInt8](repeating: 0, count: (size + page - 1) / page)
        guard mincore(map, size, &vec) == 0 else { throw SandboxTestError("mincore") }
        return Double(vec.filter { $0 & 1 != 0 }.count) / Double(vec.count)
    }

    func test_a_sandboxs_teardown_leaves_the_host_files_it_read_in_the_page_cache() async throws {
        let path = try XCTUnwrap(Self.smallHostFile(), "no host file of 1-6 MiB under /usr/share")
        try Self.evict(path)
        XCTAssertLessThan(try Self.resident(path), 0.1, "evicted before the run: \(path)")
        let r = try await live.run("bash", "cat '\(path)' > /dev/null && echo read")
        XCTAssertEqual(r.stdout, "read\n", "\(r)")
        XCTAssertGreaterThan(try Self.resident(path), 0.9, "the sandbox read it into the page cache")
        // The slot tears the sandbox down and prepares its next one: its cgroup's charges are
        // reclaimed then, all but the host files' page cache.
        for _ in 0..<3 { _ = try await live.run("bash", "true") }
        await live.waitUntilReady()
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertGreaterThan(try Self.resident(path), 0.9, "\(path) is still cached after the teardowns")
    }

    /// The compiler's pages stay cached too: neither the run after a compile nor the teardown forces
    /// them out (a g++ hello world read cc1plus and its headers from disk again: ~40% more CPU).
    func test_a_compile_leaves_the_compiler_in_the_page_cache() async throws {
        let cc1 = try XCTUnwrap(try? Self.output(["/usr/bin/gcc", "-print-prog-name=cc1"]), "gcc (scripts/install-deps)")
        try Self.evict(cc1)
        XCTAssertLessThan(try Self.resident(cc1), 0.05, "evicted before the compile: \(cc1)")
        // Code of its own: a compile the cache holds would not run cc1.
        let code = "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", \(UInt32.random(in: 1...UInt32.max))); return 0; }"
        let r = try await live.run("gcc", code)
        XCTAssertEqual(r.status, .ok, "\(r)")
        XCTAssertEqual(r.compile?.status, .ok, "\(r)")
        let afterRun = try Self.resident(cc1)
        XCTAssertGreaterThan(afterRun, 0.05, "the compile read cc1")
        for _ in 0..<3 { _ = try await live.run("bash", "true") }
        await live.waitUntilReady()
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertGreaterThan(try Self.resident(cc1), afterRun * 0.9, "cc1 is still cached after the run and the teardowns")
    }

    /// The compiler's page cache, kept for the run, counts as the run's room: a program that fills
    /// its limit after a compile reports a peak near that limit, not the limit less the cache.
    func test_a_program_at_its_limit_after_a_compile_reports_a_peak_near_the_limit() async throws {
        let limit: Int64 = 64 << 20
        try Self.evict(try Self.output(["/usr/bin/gcc", "-print-prog-name=cc1"]))  // charged to this slot by the compile
        let code = "#include <stdlib.h>\n#include <string.h>\n#include <stdio.h>\nint main(void) {\n"
            + "  for (int i = 0; i < 4096; i++) { char *p = malloc(1 << 20); if (!p) return 1; memset(p, i, 1 << 20); }\n"
            + "  puts(\"\(UInt32.random(in: 1...UInt32.max))\"); return 0; }"
        let r = try await live.run("gcc", code, limits: RunLimits(memoryBytes: limit))
        XCTAssertEqual(r.compile?.status, .ok, "\(r)")
        XCTAssertEqual(r.status, .oom, "\(r)")
        XCTAssertGreaterThan(Double(r.memoryPeakBytes), Double(limit) * 0.8, "\(r)")
        XCTAssertLessThanOrEqual(r.memoryPeakBytes, limit, "\(r)")
    }

    /// A tiny program after a compile shows a peak of its own: its charges do not come out of the
    /// compiler's per-CPU batches, which the kernel is made to give back before the run.
    func test_a_small_program_after_a_compile_shows_its_own_peak() async throws {
        for _ in 0..<3 {
            let r = try await live.run("gcc", "int main(void) { return \(Int.random(in: 0...0)); }  // \(UInt32.random(in: 1...UInt32.max))")
            XCTAssertEqual(r.compile?.status, .ok, "\(r)")
            XCTAssertEqual(r.status, .ok, "\(r)")
            XCTAssertGreaterThan(r.memoryPeakBytes, 0, "\(r)")
            XCTAssertLessThan(r.memoryPeakBytes, 16 << 20, "the run's peak includes the compiler's: \(r)")
        }
    }

    static func evict(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0, posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0 else { throw SandboxTestError("evict \(path)") }
        close(fd)
    }

    static func output(_ argv: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw SandboxTestError("\(argv) failed") }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

struct SandboxTestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
