import CodesandCore
import CodesandProtocol
import Foundation
import XCTest

/// Every default language for real: hello world, a runtime error, and for compiled ones a compile
/// error. CI installs them all (scripts/install-deps), so none may be missing there.
final class LanguageTests: XCTestCase {
    var live: LiveService!

    struct Case {
        var hello: String
        var failing: String        // exits non-zero with something on stderr
        var compileError: String?  // compiled languages only
    }

    static let cases: [String: Case] = [
        "python3": Case(hello: "print('hello')", failing: "raise SystemExit('boom')"),
        "php": Case(hello: "echo \"hello\\n\";", failing: "fwrite(STDERR, \"boom\\n\"); exit(3);"),
        "bash": Case(hello: "echo hello", failing: "echo boom >&2; exit 3"),
        "sh": Case(hello: "echo hello", failing: "echo boom >&2; exit 3"),
        "fish": Case(hello: "echo hello", failing: "echo boom >&2; exit 3"),
        "zsh": Case(hello: "echo hello", failing: "echo boom >&2; exit 3"),
        "perl": Case(hello: "print \"hello\\n\";", failing: "die \"boom\\n\";"),
        "ruby": Case(hello: "puts 'hello'", failing: "raise 'boom'"),
        "tcl": Case(hello: "puts hello", failing: "error boom"),
        "javascript": Case(hello: "console.log('hello')", failing: "throw new Error('boom')"),
        "c": Case(hello: "#include <stdio.h>\nint main(){puts(\"hello\");return 0;}",
                  failing: "#include <stdio.h>\nint main(){fputs(\"boom\\n\", stderr);return 3;}"),
        "go": Case(hello: "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"hello\") }",
                   failing: "package main\nfunc main() { panic(\"boom\") }",
                   compileError: "package main\nfunc main() { nope() }"),
        "gcc": Case(hello: "#include <stdio.h>\nint main(){puts(\"hello\");return 0;}",
                    failing: "#include <stdio.h>\nint main(){fputs(\"boom\\n\", stderr);return 3;}",
                    compileError: "int main(){ return nope; }"),
        "g++": Case(hello: "#include <iostream>\nint main(){std::cout<<\"hello\"<<std::endl;}",
                    failing: "#include <iostream>\nint main(){std::cerr<<\"boom\"<<std::endl;return 3;}",
                    compileError: "int main(){ return nope; }"),
        "java": Case(hello: "public class Main { public static void main(String[] a){ System.out.println(\"hello\"); } }",
                     failing: "public class Main { public static void main(String[] a){ throw new RuntimeException(\"boom\"); } }",
                     compileError: "public class Main { public static void main(String[] a){ nope(); } }"),
    ]

    override func setUp() async throws {
        try requireRoot()
        live = try await LiveService(pool: 2)
        await live.waitUntilReady()
    }

    override func tearDown() async throws {
        live?.shutdown()
    }

    func test_languages_lists_every_installed_default_language_with_a_version() throws {
        let infos = live.service.languages.infos
        XCTAssertEqual(Set(infos.map(\.name)), Set(Self.cases.keys), "CI installs them all: \(infos.map(\.name))")
        for info in infos {
            XCTAssertEqual(info.version.first?.isNumber, true, "\(info.name) version \(info.version)")
        }
    }

    func test_hello_world_in_every_language() async throws {
        for (lang, c) in Self.cases.sorted(by: { $0.key < $1.key }) {
            let r = try await live.run(lang, c.hello)
            XCTAssertEqual(r.stdout, "hello\n", "\(lang): \(r.status) \(r.stderr) \(r.compile?.stderr ?? "")")
            XCTAssertEqual(r.status, .ok, lang)
        }
    }

    func test_a_runtime_error_is_a_non_zero_exit_with_its_stderr() async throws {
        for (lang, c) in Self.cases.sorted(by: { $0.key < $1.key }) {
            let r = try await live.run(lang, c.failing)
            XCTAssertEqual(r.status, .error, "\(lang): \(r)")
            XCTAssertNotEqual(r.exitCode ?? 0, 0, lang)
            XCTAssertTrue(r.stderr.contains("boom"), "\(lang) stderr: \(r.stderr)")
        }
    }

    func test_a_compile_error_is_compile_error_with_the_compilers_message() async throws {
        for (lang, c) in Self.cases.sorted(by: { $0.key < $1.key }) {
            guard let bad = c.compileError else { continue }
            let r = try await live.run(lang, bad)
            XCTAssertEqual(r.status, .compileError, "\(lang): \(r)")
            XCTAssertTrue(r.compile?.stderr.contains("nope") == true, "\(lang): \(r.compile?.stderr ?? "no compile")")
            XCTAssertEqual(r.stdout, "", lang)
        }
    }

    func test_a_compile_flag_with_shell_metacharacters_reaches_the_compiler_verbatim() async throws {
        let flag = "-DMSG=\"a;b $(touch /tmp/pwned) `id` | x\""
        let r = try await live.service.run(
            RunParams(language: "gcc", code: "#include <stdio.h>\nint main(){puts(MSG);}", compileFlags: [flag]),
            peer: PeerInfo(pid: 0, uid: 0, gid: 0))
        XCTAssertEqual(r.stdout, "a;b $(touch /tmp/pwned) `id` | x\n", "\(r.compile?.stderr ?? "")")
        let refused = await refusal(RunParams(language: "gcc", code: "int main(){}", compileFlags: ["-O2; touch /tmp/x"]))
        XCTAssertEqual(refused?.code, -32602, "a flag outside the allow-list must be refused")
        XCTAssertTrue(refused?.message.contains("params.compile_flags[0]") == true, refused?.message ?? "")
    }

    func test_a_compile_that_leaves_no_program_is_a_result_not_an_internal_error() async throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/gcc"), "needs gcc (scripts/install-deps)")
        let r = try await live.service.run(
            RunParams(language: "gcc", code: "int main(void) { return 0; }", compileFlags: ["-fsyntax-only"]),
            peer: PeerInfo(pid: 0, uid: 0, gid: 0))
        XCTAssertEqual(r.compile?.status, .ok, "\(r)")
        XCTAssertEqual(r.exitCode, 127, "\(r)")
        XCTAssertEqual(r.status, .error, "\(r)")
        XCTAssertTrue(r.stderr.contains("cannot execute") && r.stderr.contains("No such file"), r.stderr)
    }

    func refusal(_ params: RunParams) async -> RPCError? {
        do {
            _ = try await live.service.run(params, peer: PeerInfo(pid: 0, uid: 0, gid: 0))
            return nil
        } catch {
            return error
        }
    }

    func test_templates_make_bare_snippets_work() async throws {
        let php = try await live.run("php", "echo 6*7, \"\\n\";")
        XCTAssertEqual(php.stdout, "42\n")
        let c = try await live.run("c", "printf(\"%d\\n\", 6*7);")
        XCTAssertEqual(c.stdout, "42\n", c.stderr)
        let java = try await live.run("java", "System.out.println(6*7);")
        XCTAssertEqual(java.stdout, "42\n", java.compile?.stderr ?? java.stderr)
    }

    func test_go_and_java_work_under_their_limit_overrides() async throws {
        let go = try await live.run("go", "package main\nimport (\"fmt\"; \"sync\")\nfunc main() {\n var wg sync.WaitGroup\n for i := 0; i < 50; i++ { wg.Add(1); go func() { defer wg.Done() }() }\n wg.Wait(); fmt.Println(\"done\")\n}")
        XCTAssertEqual(go.stdout, "done\n", go.compile?.stderr ?? go.stderr)
        let java = try await live.run("java", "import java.util.stream.*;\npublic class Main { public static void main(String[] a){ System.out.println(IntStream.range(0, 1000000).parallel().sum()); } }")
        XCTAssertEqual(java.stdout, "1783293664\n", java.stderr)
    }

    func test_the_compile_stage_has_its_own_limits_not_the_runs() async throws {
        // g++ takes ~400 ms to compile iostream; the program's 100 ms wall limit applies to the program only.
        let r = try await live.run("g++", "#include <iostream>\nint main(){std::cout<<\"hello\"<<std::endl;}",
                                   limits: RunLimits(wallMs: 100))
        XCTAssertEqual(r.stdout, "hello\n", "\(r)")
        XCTAssertGreaterThan(r.compile?.wallMs ?? 0, 100, "the compile took longer than the run's limit")
    }

}
