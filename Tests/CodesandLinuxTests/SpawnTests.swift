import CodesandSpawn
import Foundation
import Glibc
import XCTest

/// The one way host programs are started: exactly the fds, environment and signals it is given.
final class SpawnTests: XCTestCase {
    let dir = NSTemporaryDirectory() + "codesand-spawn-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    override func setUpWithError() throws { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Runs it with stdout and stderr to a file; returns the exit code and what it wrote.
    func output(_ spawn: Spawn) throws -> (Int32, String) {
        var s = spawn
        s.stdout = .file(dir + "/out", append: false)
        s.stderr = .sameAsStdout
        let status = Spawn.waitStatus(try s.start())
        return ((status >> 8) & 0xff, try String(contentsOfFile: dir + "/out", encoding: .utf8))
    }

    func test_argv_reaches_the_program_exactly_without_a_shell() throws {
        let (code, out) = try output(Spawn(["/bin/echo", "$(id)", "a  b", "*"]))
        XCTAssertEqual(code, 0)
        XCTAssertEqual(out, "$(id) a  b *\n")
    }

    func test_only_the_stdio_and_passed_fds_reach_the_child() throws {
        let stray = open("/dev/null", O_RDONLY)  // no O_CLOEXEC, like a socket systemd passes
        var pipe: [Int32] = [0, 0]
        XCTAssertEqual(Glibc.pipe(&pipe), 0)
        defer { close(stray); close(pipe[0]); close(pipe[1]) }
        var spawn = Spawn(["/bin/ls", "/proc/self/fd"])
        spawn.passing = [pipe[0]]
        let (_, out) = try output(spawn)
        // 0-2, the passed pipe as 3, and ls's own directory fd (4).
        XCTAssertEqual(out.split(separator: "\n").compactMap { Int($0) }.sorted(), [0, 1, 2, 3, 4], out)
        let (_, link) = try output({ var s = Spawn(["/usr/bin/readlink", "/proc/self/fd/3"]); s.passing = [pipe[0]]; return s }())
        XCTAssertTrue(link.hasPrefix("pipe:"), link)
    }

    func test_signals_start_at_their_defaults_with_none_blocked() throws {
        let oldPipe = signal(SIGPIPE, SIG_IGN)  // as the daemon has it
        defer { signal(SIGPIPE, oldPipe) }
        var block = sigset_t(), old = sigset_t()
        sigemptyset(&block)
        sigaddset(&block, SIGUSR1)
        pthread_sigmask(SIG_BLOCK, &block, &old)
        defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
        let (_, status) = try output(Spawn(["/bin/grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]))
        // The standard signals 1-31 (bits 0-30); glibc keeps its own two real-time ones to itself.
        func mask(_ name: String) -> UInt64? {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) }.map { $0 & 0x7fff_ffff }
        }
        XCTAssertEqual(mask("SigBlk"), 0, status)
        XCTAssertEqual(mask("SigIgn"), 0, "SIGPIPE ignored as in the daemon? \(status)")
    }

    func test_environment_directory_and_process_group_are_as_given() throws {
        var spawn = Spawn(["/bin/sh", "-c", "echo \"$ONLY|$HOME|$(pwd)|$(ps -o pgid= -p $$ | tr -d ' ')|$$\""], environment: ["ONLY=1"])
        spawn.directory = "/usr"
        spawn.newProcessGroup = true
        let (_, out) = try output(spawn)
        let f = out.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(Array(f.prefix(3)), ["1", "", "/usr"], out)
        XCTAssertEqual(f[3], f[4], "leads its own process group: \(out)")
    }

    func test_a_missing_program_is_an_error_naming_it() {
        XCTAssertThrowsError(try Spawn(["/nonexistent/prog"]).start()) { error in
            XCTAssertEqual((error as? SpawnError)?.errno, ENOENT)
            XCTAssertTrue("\(error)".contains("/nonexistent/prog"), "\(error)")
        }
        XCTAssertThrowsError(try Spawn(["echo"]).start(), "no PATH search unless asked")
        var found = Spawn(["echo", "x"])
        found.searchPath = true
        found.stdout = .null
        XCTAssertEqual(Spawn.waitStatus((try? found.start()) ?? -1), 0)
    }
}
