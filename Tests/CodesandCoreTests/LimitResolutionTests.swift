@testable import CodesandCore
import CodesandProtocol
import XCTest

/// Every limit of the table (`Limit`) is resolved, checked and configured the same way, and each
/// error names the limit's key.
final class LimitResolutionTests: XCTestCase {
    let defaults = LimitSet { $0.row.shippedDefault }
    let maxima = LimitSet { $0.row.shippedMaximum }

    func resolveError(_ requested: RunLimits) -> String? {
        do {
            _ = try LimitSet.resolve(requested, defaults: defaults, max: maxima)
            return nil
        } catch {
            XCTAssertEqual(error.code, -32602)
            return error.message
        }
    }

    func configError(_ toml: String) -> String? {
        do {
            _ = try ConfigLoader.load(fileText: toml)
            return nil
        } catch {
            return "\(error)"
        }
    }

    func test_a_request_overrides_only_the_limits_it_names() throws {
        for limit in Limit.allCases {
            var requested = RunLimits()
            requested[limit] = limit.row.minimum
            let resolved = try LimitSet.resolve(requested, defaults: defaults, max: maxima)
            for other in Limit.allCases {
                XCTAssertEqual(resolved[other], other == limit ? limit.row.minimum : defaults[other], "\(limit.key) set, \(other.key) read")
            }
        }
        XCTAssertEqual(try LimitSet.resolve(nil, defaults: defaults, max: maxima), defaults)
    }

    func test_any_limit_above_the_maximum_is_refused_naming_it() {
        for limit in Limit.allCases {
            var requested = RunLimits()
            requested[limit] = maxima[limit] + 1
            XCTAssertEqual(resolveError(requested),
                           "params.limits.\(limit.key) is \(maxima[limit] + 1), above this daemon's maximum of \(maxima[limit])")
            requested[limit] = maxima[limit]
            XCTAssertNil(resolveError(requested), "\(limit.key) at its maximum")
        }
    }

    func test_memory_and_pids_below_what_a_sandbox_needs_are_refused_saying_why() {
        XCTAssertEqual(resolveError(RunLimits(memoryBytes: 1 << 20)), "params.limits.memory_bytes must be at least 4194304 (4 MiB)")
        XCTAssertEqual(resolveError(RunLimits(pids: 1)), "params.limits.pids must be at least 2 (the sandbox's init and the program)")
        XCTAssertNil(resolveError(RunLimits(memoryBytes: 4 << 20, pids: 2)))
    }

    func test_a_languages_defaults_are_cut_to_the_maxima() {
        let high = RunLimits { maxima[$0] * 2 }
        XCTAssertEqual(high.capped(by: maxima), RunLimits { maxima[$0] })
        XCTAssertEqual(RunLimits(pids: 3).capped(by: maxima), RunLimits(pids: 3))
    }

    func test_the_shipped_config_has_the_tables_defaults_and_maxima() throws {
        let c = try CodesandConfig.defaults()
        XCTAssertEqual(c.defaultLimits, defaults)
        XCTAssertEqual(c.maxLimits, maxima)
        for limit in Limit.allCases {
            XCTAssertTrue(DefaultConfig.toml.contains("\n\(limit.key) = \(limit.row.shippedDefault)   "), limit.key)
            XCTAssertTrue(DefaultConfig.toml.contains("# \(limit.row.meaning)\n"), limit.key)
        }
    }

    func test_every_limit_is_configurable_and_checked_by_its_key() throws {
        for limit in Limit.allCases {
            let lowered = try ConfigLoader.load(fileText: "[limits.default]\n\(limit.key) = \(limit.row.minimum)\n")
            XCTAssertEqual(lowered.defaultLimits[limit], limit.row.minimum)
            let above = configError("[limits.default]\n\(limit.key) = \(limit.row.shippedMaximum + 1)\n")
            XCTAssertEqual(above, "limits.default.\(limit.key): \(limit.row.shippedMaximum + 1) is above limits.max.\(limit.key) "
                                  + "(\(limit.row.shippedMaximum))")
            let tooLow = configError("[limits.max]\n\(limit.key) = \(limit.row.minimum - 1)\n")
            XCTAssertEqual(tooLow?.hasPrefix("limits.max.\(limit.key): must be between \(limit.row.minimum) and "), true, tooLow ?? "")
            let tooHigh = configError("[limits.max]\n\(limit.key) = \(limit.row.ceiling + 1)\n")
            XCTAssertEqual(tooHigh?.hasPrefix("limits.max.\(limit.key): must be between"), true, tooHigh ?? "")
        }
    }

    /// A language's `limits` and `compile_limits` take every limit under its key, within the same
    /// bounds as [limits.default]: a value no run could start with is the config's error, not each request's.
    func test_a_languages_limits_take_every_limit_and_name_a_bad_one() throws {
        let lang = "[languages.lua]\nfile = \"main.lua\"\nrun = [\"/usr/bin/lua\", \"{file}\"]\n"
        for limit in Limit.allCases {
            let value = limit.row.minimum + 1
            let c = try ConfigLoader.load(fileText: lang + "limits = { \(limit.key) = \(value) }\n"
                                                        + "compile_limits = { \(limit.key) = \(value) }\n")
            let spec = try XCTUnwrap(c.languages.first { $0.name == "lua" })
            var expected = RunLimits()
            expected[limit] = value
            XCTAssertEqual(spec.limits, expected)
            XCTAssertEqual(spec.compileLimits, expected)
            let e = configError(lang + "compile_limits = { \(limit.key) = \(limit.row.minimum - 1) }\n")
            XCTAssertEqual(e?.hasPrefix("languages.lua.compile_limits.\(limit.key): must be between"), true, e ?? "")
        }
        let e = configError(lang + "limits = { wall = 1 }\n")
        XCTAssertEqual(e, "languages.lua.limits.wall: unknown limit (known: \(Limit.allCases.map(\.key).joined(separator: ", ")))")
    }
}
