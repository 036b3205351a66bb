@testable import CodesandCore
import CodesandProtocol
import XCTest

final class LanguageAndLimitsTests: XCTestCase {
    let spec = LanguageSpec(name: "python3", aliases: ["py"], file: "main.py",
                            run: ["/usr/bin/python3", "{file}", "{args}"], env: [:], version: [])

    func test_args_are_spliced_as_separate_argv_elements() throws {
        let b = JobBuilder(config: try CodesandConfig.defaults(), spec: spec)
        XCTAssertEqual(b.expand(spec.run, home: "/home/s", args: ["a b", "; rm -rf /", "$(x)"], flags: []),
                       ["/usr/bin/python3", "/home/s/main.py", "a b", "; rm -rf /", "$(x)"])
        XCTAssertEqual(b.expand(spec.run, home: "/h", args: [], flags: []), ["/usr/bin/python3", "/h/main.py"])
    }

    func test_compile_flags_must_match_the_allow_list_and_stay_argv_elements() throws {
        var gcc = LanguageSpec(name: "gcc", aliases: [], file: "main.c", run: ["{dir}/main"], env: [:], version: [])
        gcc.compile = ["/usr/bin/gcc", "-o", "{dir}/main", "{file}", "{flags}"]
        gcc.flagsPattern = "-O[0-3]|-D[A-Za-z_]+(=.*)?"
        let b = JobBuilder(config: try CodesandConfig.defaults(), spec: gcc)
        XCTAssertEqual(try b.checkedFlags(["-O2", "-DMSG=a;b $(x)"]), ["-O2", "-DMSG=a;b $(x)"])
        XCTAssertThrowsError(try b.checkedFlags(["-O2; touch /tmp/x"])) {
            XCTAssertTrue(($0 as! RPCError).message.contains("params.compile_flags[0]"))
        }
        XCTAssertEqual(b.expand(gcc.compile, home: "/h", args: [], flags: ["-O2", "-DX=1 2"]),
                       ["/usr/bin/gcc", "-o", "/h/main", "/h/main.c", "-O2", "-DX=1 2"])
        XCTAssertThrowsError(try b.checkedFlags(["-DX=a\u{0}b"]), "a NUL would shift the job's string list")
        let py = JobBuilder(config: try CodesandConfig.defaults(), spec: spec)
        XCTAssertThrowsError(try py.checkedFlags(["-O2"]))
    }

    func test_a_template_wraps_code_that_lacks_its_marker() throws {
        var php = LanguageSpec(name: "php", aliases: [], file: "main.php", run: ["/usr/bin/php", "{file}"], env: [:], version: [])
        php.templateUnless = "<?php"
        php.templateWrap = "<?php\n{code}"
        let b = JobBuilder(config: try CodesandConfig.defaults(), spec: php)
        XCTAssertEqual(b.applyTemplate("echo 1;"), "<?php\necho 1;")
        XCTAssertEqual(b.applyTemplate("<?php echo 1;"), "<?php echo 1;")
    }

    func test_replacing_all_occurrences_by_bytes() {
        XCTAssertEqual("{file}".replacingAll("{file}", with: "/h/main.py"), "/h/main.py")
        XCTAssertEqual("-o{dir}/a {dir}{dir}".replacingAll("{dir}", with: "/h"), "-o/h/a /h/h")
        XCTAssertEqual("none here".replacingAll("{dir}", with: "/h"), "none here")
        XCTAssertEqual("{{dir}}".replacingAll("{dir}", with: "é🙂"), "{é🙂}")
        XCTAssertEqual("aaa".replacingAll("aa", with: "b"), "ba")  // left to right, not overlapping
        XCTAssertEqual("x{code}y".replacingAll("{code}", with: "{code}"), "x{code}y")  // no re-expansion
        XCTAssertEqual("abc".replacingAll("", with: "z"), "abc")
        XCTAssertEqual("ab".replacingAll("abc", with: "z"), "ab")
        XCTAssertEqual("café {f}".replacingAll("{f}", with: "\u{0}"), "café \u{0}")
    }

    func test_lookup_by_name_and_alias() {
        let t = LanguageTable(entries: [.init(spec: spec, version: "3.11.2")])
        XCTAssertEqual(t.lookup("py")?.spec.name, "python3")
        XCTAssertEqual(t.lookup("python3")?.version, "3.11.2")
        XCTAssertNil(t.lookup("cobol"))
    }

    func test_versions_are_extracted_from_common_outputs() {
        XCTAssertEqual(LanguageSpec.extractVersion("Python 3.11.2\n"), "3.11.2")
        XCTAssertEqual(LanguageSpec.extractVersion("GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)\n"), "5.2.15")
        XCTAssertEqual(LanguageSpec.extractVersion("0.5.12-1"), "0.5.12")
        XCTAssertEqual(LanguageSpec.extractVersion("v20.19.2"), "20.19.2")
    }

    func test_limits_above_the_maximum_name_the_field() throws {
        let c = try CodesandConfig.defaults()
        XCTAssertThrowsError(try LimitSet.resolve(RunLimits(wallMs: 10_000_000), defaults: c.defaultLimits, max: c.maxLimits)) {
            XCTAssertTrue(($0 as! RPCError).message.contains("params.limits.wall_ms"))
        }
        let l = try LimitSet.resolve(RunLimits(wallMs: 1000), defaults: c.defaultLimits, max: c.maxLimits)
        XCTAssertEqual(l.wallMs, 1000)
        XCTAssertEqual(l.cpuMs, c.defaultLimits.cpuMs)
    }

    func test_result_status_precedence() {
        func outcome(_ ws: Int32?, timeout: Bool = false, oom: Bool = false, truncate: Bool = false) -> RunStatus {
            var out = OutputCollector(maxBytes: 1, maxLines: 10)
            if truncate { out.append(Array("xx".utf8), from: .stdout) }
            return RunResult.build(from: SandboxOutcome(waitStatus: ws, timedOut: timeout, oomKilled: oom, output: out,
                                                        wallNs: 0, cpuNs: 0, memoryPeakBytes: 0)).status
        }
        XCTAssertEqual(outcome(0), .ok)
        XCTAssertEqual(outcome(3 << 8), .error)
        XCTAssertEqual(outcome(11), .signal)
        XCTAssertEqual(outcome(nil, timeout: true), .timeout)
        XCTAssertEqual(outcome(9, timeout: true, oom: true), .oom)
        XCTAssertEqual(outcome(nil, truncate: true), .outputLimit)
        XCTAssertEqual(outcome(0, truncate: true), .ok)  // it finished on its own before the kill landed
    }
}
