import CodesandCore
import CodesandProtocol
import Foundation
import XCTest

@testable import CodesandLinux

#if canImport(Glibc)
import Glibc
#endif

/// The compile cache on real sandboxes: hits give the uncached result, anything that changes the
/// program misses, a snippet cannot reach the cache, the bounds hold, and 0 turns it off.
final class CompileCacheTests: XCTestCase {
    var live: LiveService!

    override func setUp() async throws {
        try requireRoot()
    }

    override func tearDown() async throws {
        live?.shutdown()
    }

    private func start(pool: Int = 2, configure: @escaping (inout CodesandConfig) -> Void = { _ in }) async throws {
        live = try await LiveService(pool: pool, configure: configure)
        await live.waitUntilReady()
    }

    private func run(_ language: String, _ code: String, flags: [String]? = nil, stdin: String? = nil) async throws -> RunResult {
        try await Self.run(live.service, language, code, flags: flags, stdin: stdin)
    }

    private static func run(_ service: RunService, _ language: String, _ code: String, flags: [String]? = nil,
                            stdin: String? = nil) async throws -> RunResult {
        try await service.run(RunParams(language: language, code: code, stdin: stdin, compileFlags: flags),
                              peer: PeerInfo(pid: getpid(), uid: 0, gid: 0))
    }

    private func cached(_ language: String, _ code: String) async throws -> Bool? {
        try await run(language, code).compile?.cached
    }

    private var cache: CompileCache { live.backend.compileCache! }
    private var cacheFiles: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: cache.directory)) ?? []).sorted()
    }

    /// A warning on the compiler's stderr, output on both streams, stdin read, a non-zero exit.
    static let warningProgram = """
        #include <stdio.h>
        int main(void) { int unused; char line[64]; if (fgets(line, sizeof line, stdin)) printf("got %s", line);
        fprintf(stderr, "to stderr\\n"); return 3; }
        """

    func test_a_second_identical_run_is_a_hit_with_the_uncached_result() async throws {
        try await start()
        let first = try await run("gcc", Self.warningProgram, flags: ["-Wall"], stdin: "x\n")
        XCTAssertNil(first.compile?.cached, "a miss says nothing")
        XCTAssertTrue(first.compile?.stderr.contains("unused") == true, "the compiler's warning: \(first)")
        XCTAssertEqual(first.stdout, "got x\n")
        let second = try await run("gcc", Self.warningProgram, flags: ["-Wall"], stdin: "x\n")
        XCTAssertEqual(second.compile?.cached, true, "\(second)")
        for r in [first, second] { XCTAssertEqual(r.exitCode, 3) }
        XCTAssertEqual(second.status, first.status)
        XCTAssertEqual(second.stdout, first.stdout)
        XCTAssertEqual(second.stderr, first.stderr)
        // (`output`'s order across stdout and stderr is the pipes' race, cached or not.)
        XCTAssertEqual(second.compile?.stdout, first.compile?.stdout)
        XCTAssertEqual(second.compile?.stderr, first.compile?.stderr)
        XCTAssertEqual(second.compile?.output, first.compile?.output)
        XCTAssertEqual(second.compile?.status, .ok)
        XCTAssertEqual(second.compile?.exitCode, 0)
        XCTAssertEqual(cache.stats.hits, 1)
        let counted = live.service.metrics.compileCacheCounts("gcc")
        XCTAssertEqual(counted.hits, 1)
        XCTAssertEqual(counted.misses, 1)
        XCTAssertEqual(cacheFiles.count, 1)
        // The entry is root's alone, in a directory that is root's alone.
        var st = stat()
        XCTAssertEqual(lstat(cache.directory, &st), 0)
        XCTAssertEqual(st.st_mode & 0o7777, 0o700)
        XCTAssertEqual(st.st_uid, 0)
        XCTAssertEqual(lstat(cache.directory + "/" + cacheFiles[0], &st), 0)
        XCTAssertEqual(st.st_mode & 0o7777, 0o600)
    }

    func test_gpp_and_go_hit_too() async throws {
        try await start()
        for (language, code) in [("g++", "#include <iostream>\nint main(){std::cout<<\"hello\"<<std::endl;}"),
                                 ("go", "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"hello\") }")] {
            let first = try await run(language, code)
            let second = try await run(language, code)
            XCTAssertEqual(first.stdout, "hello\n", "\(language): \(first)")
            XCTAssertEqual(second.stdout, "hello\n", "\(language): \(second)")
            XCTAssertNil(first.compile?.cached)
            XCTAssertEqual(second.compile?.cached, true, language)
        }
    }

    func test_other_flags_or_other_code_miss() async throws {
        try await start()
        let code = "#include <stdio.h>\nint main(void){ puts(\"a\"); return 0; }"
        _ = try await run("gcc", code)
        let flags = try await run("gcc", code, flags: ["-O2"])
        let other = try await run("gcc", code.replacingOccurrences(of: "\"a\"", with: "\"b\""))
        let gpp = try await run("g++", code)  // another compiler, the same bytes
        XCTAssertNil(flags.compile?.cached)
        XCTAssertNil(other.compile?.cached)
        XCTAssertNil(gpp.compile?.cached)
        XCTAssertEqual(other.stdout, "b\n")
        XCTAssertEqual(cache.stats.hits, 0)
        XCTAssertEqual(cacheFiles.count, 4)
        let again = try await run("gcc", code, flags: ["-O2"])
        XCTAssertEqual(again.compile?.cached, true)
    }

    func test_a_failed_compile_is_not_cached() async throws {
        try await start()
        for _ in 0..<2 {
            let r = try await run("gcc", "int main(void){ return nope; }")
            XCTAssertEqual(r.status, .compileError)
            XCTAssertNil(r.compile?.cached)
        }
        XCTAssertEqual(cacheFiles, [])
        XCTAssertEqual(cache.stats.hits, 0)
    }

    func test_a_compile_that_writes_no_output_file_caches_nothing() async throws {
        try await start()
        // -fsyntax-only is an allowed flag: the compile succeeds and leaves no program.
        for _ in 0..<2 {
            let r = try? await run("gcc", "int main(void){ return 0; }", flags: ["-fsyntax-only"])
            XCTAssertNotEqual(r?.compile?.cached, true)
        }
        XCTAssertEqual(cacheFiles, [])
    }

    /// The run stage's program may do anything to its own copy: replace it by a symlink to a host
    /// file, by a huge file, or by a FIFO. The cache kept its own copy before the program started.
    func test_a_program_that_replaces_its_binary_cannot_poison_the_cache() async throws {
        try await start()
        let code = """
            #include <stdio.h>
            #include <stdlib.h>
            #include <unistd.h>
            #include <sys/stat.h>
            int main(void) {
                unlink("/home/sandbox/main");
                if (symlink("/etc/shadow", "/home/sandbox/main") != 0) return 9;
                unlink("/home/sandbox/main");
                FILE *f = fopen("/home/sandbox/main", "w");
                for (int i = 0; f && i < 20 * 1024; i++) fwrite("0123456789abcdef0123456789abcdef", 32, 32, f);
                if (f) fclose(f);
                unlink("/home/sandbox/main");
                mkfifo("/home/sandbox/main", 0777);
                puts("replaced");
                return 0;
            }
            """
        let first = try await run("gcc", code)
        XCTAssertEqual(first.stdout, "replaced\n", "\(first)")
        XCTAssertEqual(cacheFiles.count, 1)
        let path = cache.directory + "/" + cacheFiles[0]
        let stored = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertLessThan(stored.count, 1 << 20, "the entry is the compiler's program, not what the run wrote")
        for _ in 0..<2 {
            let again = try await run("gcc", code)
            XCTAssertEqual(again.compile?.cached, true)
            XCTAssertEqual(again.stdout, "replaced\n", "\(again)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), stored, "the entry is unchanged")
        var st = stat()
        XCTAssertEqual(lstat(path, &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFREG)
    }

    /// What a compile stage leaves where the program should be, read the way the cache reads it:
    /// a symlink is not followed, a FIFO does not block, a file past the cap is refused.
    func test_the_output_is_read_only_as_a_bounded_regular_file() throws {
        let dir = NSTemporaryDirectory() + "codesand-cc-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fd = open(dir, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        FileManager.default.createFile(atPath: dir + "/ok", contents: Data([1, 2, 3]))
        FileManager.default.createFile(atPath: dir + "/big", contents: Data(count: 4097))
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: dir + "/ok")
        XCTAssertEqual(mkfifo(dir + "/fifo", 0o666), 0)
        XCTAssertEqual(mkdir(dir + "/dir", 0o755), 0)
        XCTAssertEqual(CompileCache.readOutput(in: fd, named: "ok", limit: 4096), [1, 2, 3])
        XCTAssertNil(CompileCache.readOutput(in: fd, named: "big", limit: 4096))
        XCTAssertNil(CompileCache.readOutput(in: fd, named: "link", limit: 4096))
        XCTAssertNil(CompileCache.readOutput(in: fd, named: "fifo", limit: 4096))
        XCTAssertNil(CompileCache.readOutput(in: fd, named: "dir", limit: 4096))
        XCTAssertNil(CompileCache.readOutput(in: fd, named: "absent", limit: 4096))
    }

    func test_a_program_past_the_entry_cap_runs_but_is_not_kept() async throws {
        try await start { $0.sandbox.compileCacheBytes = 8 << 20 }  // entries up to 2 MiB
        let code = "#include <stdio.h>\nchar big[3 << 20] = {1};\nint main(void){ printf(\"%d\\n\", big[0]); return 0; }"
        for _ in 0..<2 {
            let r = try await run("gcc", code)
            XCTAssertEqual(r.stdout, "1\n", "\(r)")
            XCTAssertNil(r.compile?.cached)
        }
        XCTAssertEqual(cacheFiles, [])
        XCTAssertEqual(cache.stats.refused, 2)
    }

    func test_eviction_holds_the_entry_bound_least_recently_used_first() async throws {
        try await start { $0.sandbox.compileCacheEntries = 2 }
        func program(_ n: Int) -> String { "#include <stdio.h>\nint main(void){ puts(\"\(n)\"); return 0; }" }
        _ = try await run("gcc", program(1))
        _ = try await run("gcc", program(2))
        var hit = try await cached("gcc", program(1))
        XCTAssertEqual(hit, true)  // 2 is now the oldest
        _ = try await run("gcc", program(3))
        XCTAssertEqual(cacheFiles.count, 2)
        XCTAssertEqual(cache.entryCount, 2)
        hit = try await cached("gcc", program(1))
        XCTAssertEqual(hit, true)
        hit = try await cached("gcc", program(3))
        XCTAssertEqual(hit, true)
        hit = try await cached("gcc", program(2))
        XCTAssertNil(hit, "evicted")
        XCTAssertEqual(cacheFiles.count, 2)
    }

    func test_eviction_holds_the_byte_bound() async throws {
        try await start { $0.sandbox.compileCacheBytes = 200_000 }  // a small C program is ~16 KiB
        for n in 0..<16 { _ = try await run("gcc", "#include <stdio.h>\nint main(void){ puts(\"\(n)\"); return 0; }") }
        let bytes = cacheFiles.reduce(Int64(0)) { sum, name in
            var st = stat()
            return sum + (lstat(cache.directory + "/" + name, &st) == 0 ? Int64(st.st_size) : 0)
        }
        XCTAssertLessThanOrEqual(bytes, 200_000)
        XCTAssertEqual(bytes, cache.totalBytes)
        XCTAssertGreaterThan(cacheFiles.count, 1)
        XCTAssertLessThan(cacheFiles.count, 16)
    }

    func test_two_identical_runs_at_once_both_work() async throws {
        try await start()
        let code = "#include <stdio.h>\nint main(void){ puts(\"twin\"); return 0; }"
        let service = live.service
        async let a = Self.run(service, "gcc", code)
        async let b = Self.run(service, "gcc", code)
        let (ra, rb) = try await (a, b)
        XCTAssertEqual(ra.stdout, "twin\n")
        XCTAssertEqual(rb.stdout, "twin\n")
        XCTAssertEqual(cacheFiles.count, 1, "\(cacheFiles)")
        let third = try await cached("gcc", code)
        XCTAssertEqual(third, true)
    }

    func test_a_disabled_cache_compiles_every_time() async throws {
        try await start { $0.sandbox.compileCacheEntries = 0 }
        XCTAssertNil(live.backend.compileCache)
        for _ in 0..<2 {
            let r = try await run("gcc", "#include <stdio.h>\nint main(void){ puts(\"x\"); return 0; }")
            XCTAssertEqual(r.stdout, "x\n")
            XCTAssertNil(r.compile?.cached)
            XCTAssertNotNil(r.compile)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: live.config.sandbox.stateDir + "/compile-cache"))
    }

    func test_a_restarted_daemon_finds_what_the_last_one_kept() async throws {
        try await start()
        let code = "#include <stdio.h>\nint main(void){ puts(\"kept\"); return 0; }"
        _ = try await run("gcc", code)
        let config = live.config
        live.backend.shutdown()
        let backend = try NativeBackend(config: config.sandbox, poolSize: 1, defaultLimits: config.defaultLimits, logger: testLogger)
        defer { backend.shutdown() }  // then tearDown's live.shutdown() removes the cache directory
        XCTAssertEqual(backend.compileCache?.entryCount, 1)
    }
}
