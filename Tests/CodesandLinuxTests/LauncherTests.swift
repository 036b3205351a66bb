import CodesandCore
import Foundation
import Logging
import XCTest

@testable import CodesandLinux

/// The pre-start launchers are files of their own language: each passes that language's own
/// syntax check, the default config names exactly these, and the daemon reads them only when
/// nobody but root can change them.
final class LauncherTests: XCTestCase {
    static let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Sources/CodesandZygote/launchers").standardized.path

    /// The language's checker for each launcher, as its extension says.
    static let checkers: [String: [String]] = [
        "py": ["/usr/bin/python3", "-m", "py_compile"],
        "php": ["/usr/bin/php", "-l"],
        "js": ["/usr/bin/node", "--check"],
        "rb": ["/usr/bin/ruby", "-c"],
        "sh": ["/bin/bash", "-n"],
    ]

    static func run(_ argv: [String], env: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        p.environment = ["PATH": "/usr/bin:/bin"].merging(env) { $1 }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func test_each_launcher_passes_its_languages_syntax_check() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.source).sorted()
        XCTAssertEqual(files, ["bash.sh", "javascript.js", "php.php", "python3.py", "ruby.rb"])
        let cache = NSTemporaryDirectory() + "codesand-pycache-\(getpid())"  // py_compile writes no __pycache__ into the tree
        defer { try? FileManager.default.removeItem(atPath: cache) }
        for file in files {
            let checker = try XCTUnwrap(Self.checkers[(file as NSString).pathExtension], file)
            try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: checker[0]), "needs \(checker[0]) (scripts/install-deps)")
            let (status, output) = try Self.run(checker + [Self.source + "/" + file], env: ["PYTHONPYCACHEPREFIX": cache])
            XCTAssertEqual(status, 0, "\(file): \(output)")
        }
        // php -l passes a file that leaves PHP mode (the rest is then output, not code), even by a
        // closing tag inside a comment: php's launcher must hold none after its opening tag.
        let php = try String(contentsOfFile: Self.source + "/php.php", encoding: .utf8)
        XCTAssertTrue(php.hasPrefix("<?php\n"))
        XCTAssertFalse(php.dropFirst(5).contains("?>"), "php.php leaves PHP mode")
    }

    /// A launcher with a syntax error is caught: the check is not a formality.
    func test_the_syntax_checks_catch_a_broken_launcher() throws {
        let dir = NSTemporaryDirectory() + "codesand-broken-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (ext, text) in ["py": "def f(:\n", "php": "<?php\necho 1 +;\n", "js": "let x = ;\n", "rb": "def x(; end\n",
                            "sh": "if then\n"] {
            let checker = try XCTUnwrap(Self.checkers[ext])
            try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: checker[0]), "needs \(checker[0])")
            try text.write(toFile: "\(dir)/broken.\(ext)", atomically: false, encoding: .utf8)
            XCTAssertNotEqual(try Self.run(checker + ["\(dir)/broken.\(ext)"], env: ["PYTHONPYCACHEPREFIX": dir]).status, 0, ext)
        }
    }

    func test_the_default_config_names_these_launchers_and_the_zygotes_answers_by_name() throws {
        let languages = try CodesandConfig.defaults().languages.filter { !$0.prestart.isEmpty }
        XCTAssertEqual(languages.map(\.launcher).sorted(), ["bash.sh", "javascript.js", "php.php", "python3.py", "ruby.rb"])
        for language in languages {
            // bash's is its start-up file, on its zygote's stdin (only a zygote gets it); node's its
            // main script, a file the init makes.
            let placeholder = ["bash": "{launcher_stdin}", "javascript": "{launcher_file}"][language.name] ?? "{launcher}"
            XCTAssertTrue(language.prestart.contains { $0.contains(placeholder) }, language.name)
            if language.name == "bash" { XCTAssertTrue(language.zygote) }
        }
        let python = try String(contentsOfFile: Self.source + "/python3.py", encoding: .utf8)
        for name in ["cs_zygote_child", "cs_zygote_served", "cs_zygote_serve_one", "cs_zygote_announce"] {
            XCTAssertTrue(python.contains("\"\(name)\"") || python.contains(".\(name)("), name)
        }
        XCTAssertFalse(python.contains("_served == 0") || python.contains("_served != 1"), "bare return codes")
    }

    /// The build's copy (next to the test binary, as next to codesandd) is found and its text
    /// replaces {launcher}.
    func test_the_builds_copy_is_found_and_resolves_the_prestart_argv() throws {
        try XCTSkipUnless(getuid() == 0, "the checkout must be root's for its launchers to be trusted")
        var config = try CodesandConfig.defaults().sandbox
        config.launcherDir = ""
        let launchers = Launchers(config: config, logger: Logger(label: "test"))
        XCTAssertTrue(launchers.directory?.hasSuffix("/codesand_CodesandZygote.resources/launchers") == true, "\(launchers.directory ?? "none")")
        let spec = PrestartSpec(language: "ruby", argv: ["/usr/bin/ruby", "-e", "{launcher}"], env: [], launcher: "ruby.rb")
        let resolved = try XCTUnwrap(launchers.resolve(spec))
        XCTAssertEqual(resolved.argv.last, try String(contentsOfFile: Self.source + "/ruby.rb", encoding: .utf8))
        XCTAssertNil(resolved.launcherOnStdin)
        // bash's goes on its zygote's stdin; its argv names /dev/stdin, and it runs only as a zygote.
        let bash = PrestartSpec(language: "bash", argv: ["/usr/bin/env", "BASH_ENV={launcher_stdin}", "/bin/bash", "/dev/null"],
                                env: [], zygote: true, launcher: "bash.sh")
        let bashResolved = try XCTUnwrap(launchers.resolve(bash))
        XCTAssertEqual(bashResolved.argv, ["/usr/bin/env", "BASH_ENV=/dev/stdin", "/bin/bash", "/dev/null"])
        XCTAssertEqual(bashResolved.launcherOnStdin, try String(contentsOfFile: Self.source + "/bash.sh", encoding: .utf8))
        XCTAssertTrue(bashResolved.onlyAsZygote)
    }

    /// The same rule as the zygote library's: a launcher someone else could change is not used
    /// (its language starts the plain way), nor is a symlink or a missing one.
    func test_a_launcher_others_could_change_is_not_used() throws {
        let dir = "/tmp/codesand-launchers-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        chmod(dir, 0o777)
        try "puts 1\n".write(toFile: dir + "/ruby.rb", atomically: false, encoding: .utf8)
        var config = try CodesandConfig.defaults().sandbox
        config.launcherDir = dir
        let spec = PrestartSpec(language: "ruby", argv: ["/usr/bin/ruby", "-e", "{launcher}"], env: [], launcher: "ruby.rb")
        XCTAssertNil(Launchers(config: config, logger: Logger(label: "test")).resolve(spec), "a directory anyone may write")
        chmod(dir, 0o755)
        XCTAssertEqual(symlink(dir + "/ruby.rb", dir + "/link.rb"), 0)
        var link = spec
        link.launcher = "link.rb"
        XCTAssertNil(Launchers(config: config, logger: Logger(label: "test")).resolve(link), "a symlink")
        var missing = spec
        missing.launcher = "absent.rb"
        XCTAssertNil(Launchers(config: config, logger: Logger(label: "test")).resolve(missing), "missing")
        if getuid() == 0 {
            XCTAssertNotNil(Launchers(config: config, logger: Logger(label: "test")).resolve(spec), "root's alone: used")
        }
    }
}
