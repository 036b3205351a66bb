@testable import CodesandCore
import XCTest

/// The Prometheus text: every family declared once with HELP and TYPE before its samples, labels
/// escaped, histograms cumulative. (DaemonProcessTests parses a live daemon's with prometheus_client.)
final class MetricsTests: XCTestCase {
    func render(_ m: Metrics, unavailable: Bool = false) -> [String] {
        m.render(slots: ["ready": 2, "busy": 1], queued: 3, uptimeSeconds: 42, slotFailures: 5, poolUnavailable: unavailable)
            .split(separator: "\n").map(String.init)
    }

    func test_runs_kills_errors_and_prestarts_are_counted_with_their_labels() {
        let m = Metrics()
        m.recordRun(language: "python3", status: "ok", latencySeconds: 0.02, wallMs: 10)
        m.recordRun(language: "python3", status: "ok", latencySeconds: 0.02, wallMs: 10)
        m.recordRun(language: "bash", status: "timeout", latencySeconds: 3, wallMs: 3000)
        m.recordKill("cancelled")
        m.recordError(code: -32601)
        m.recordPrestart(language: "ruby", hit: true)
        m.recordPrestart(language: "ruby", hit: false)
        m.recordPrestart(language: "ruby", hit: true)
        m.recordCompileCache(language: "g++", hit: true)
        m.recordCompileCache(language: "g++", hit: false)
        m.recordCompileCache(language: "g++", hit: true)
        let lines = render(m)
        for expected in [
            #"codesand_runs_total{language="python3",status="ok"} 2"#,
            #"codesand_runs_total{language="bash",status="timeout"} 1"#,
            #"codesand_kills_total{reason="timeout"} 1"#,
            #"codesand_kills_total{reason="cancelled"} 1"#,
            #"codesand_kills_total{reason="oom"} 0"#,
            #"codesand_rpc_errors_total{code="-32601"} 1"#,
            #"codesand_prestart_total{language="ruby",result="hit"} 2"#,
            #"codesand_prestart_total{language="ruby",result="miss"} 1"#,
            #"codesand_compile_cache_total{language="g++",result="hit"} 2"#,
            #"codesand_compile_cache_total{language="g++",result="miss"} 1"#,
            #"codesand_slots{state="ready"} 2"#, #"codesand_slots{state="broken"} 0"#,
            "codesand_queue_length 3", "codesand_slot_failures_total 5", "codesand_uptime_seconds 42",
            "codesand_pool_unavailable 0",
        ] {
            XCTAssertTrue(lines.contains(expected), "missing: \(expected)")
        }
        XCTAssertEqual(m.runsTotal, 3)
        XCTAssertEqual(m.runsByStatus, ["ok": 2, "timeout": 1])
        XCTAssertTrue(render(m, unavailable: true).contains("codesand_pool_unavailable 1"))
    }

    func test_histogram_buckets_are_cumulative_and_end_with_the_count() {
        let m = Metrics()
        for latency in [0.003, 0.007, 0.2, 40] { m.recordRun(language: "sh", status: "ok", latencySeconds: latency, wallMs: 1) }
        let lines = render(m)
        let name = "codesand_run_latency_seconds"
        for (le, n) in [("0.005", 1), ("0.01", 2), ("0.25", 3), ("30.0", 3), ("+Inf", 4)] {
            XCTAssertTrue(lines.contains("\(name)_bucket{le=\"\(le)\"} \(n)"), "le=\(le) should count \(n)")
        }
        XCTAssertTrue(lines.contains("\(name)_count 4"))
        let sum = lines.first { $0.hasPrefix("\(name)_sum ") }.flatMap { Double($0.split(separator: " ")[1]) }
        XCTAssertEqual(sum ?? 0, 40.21, accuracy: 1e-9)
    }

    func test_a_language_label_is_escaped() {
        let m = Metrics()
        m.recordRun(language: "we\"ird\\\nname", status: "ok", latencySeconds: 0.01, wallMs: 1)
        XCTAssertTrue(render(m).contains(#"codesand_runs_total{language="we\"ird\\\nname",status="ok"} 1"#))
    }

    func test_every_family_has_help_and_type_once_before_its_samples() {
        let m = Metrics()
        m.recordRun(language: "python3", status: "ok", latencySeconds: 0.01, wallMs: 1)
        m.recordReset(seconds: 0.004)
        var declared: [String: String] = [:]
        for line in render(m) {
            let parts = line.split(separator: " ", maxSplits: 3).map(String.init)
            if line.hasPrefix("# TYPE ") {
                XCTAssertNil(declared[parts[2]], "\(parts[2]) declared twice")
                declared[parts[2]] = parts[3]
            } else if !line.hasPrefix("#") {
                let sample = String(line.prefix { $0 != "{" && $0 != " " })
                let family = declared.keys.first { sample == $0 || (declared[$0] == "histogram" && sample.hasPrefix($0 + "_")) }
                XCTAssertNotNil(family, "\(sample) appears before its family's TYPE")
                XCTAssertNotNil(Double(parts.last!.replacingOccurrences(of: "+Inf", with: "inf")), line)
            }
        }
        XCTAssertEqual(declared["codesand_slot_reset_seconds"], "histogram")
        XCTAssertEqual(declared.count, 12)  // with codesand_compile_cache_total
    }
}
