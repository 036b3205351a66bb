import CodesandCore
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
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        XCTAssertEqual(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0)
        close(fd)
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
}

struct SandboxTestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
