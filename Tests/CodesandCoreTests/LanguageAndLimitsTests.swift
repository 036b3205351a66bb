@testable import CodesandCore
import CodesandProtocol
import XCTest

final class LanguageAndLimitsTests: XCTestCase {
    let spec = LanguageSpec(name: "python3", aliases: ["py"], file: "main.py",
                            run: ["/usr/bin/python3", "{file}", "{args}"], env: [:], version: [])

    func test_args_are_spliced_as_separate_argv_elements() {
        XCTAssertEqual(spec.argv(filePath: "/home/s/main.py", args: ["a b", "; rm -rf /", "$(x)"]),
                       ["/usr/bin/python3", "/home/s/main.py", "a b", "; rm -rf /", "$(x)"])
        XCTAssertEqual(spec.argv(filePath: "/f", args: []), ["/usr/bin/python3", "/f"])
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
