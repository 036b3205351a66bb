import CodesandProtocol
import Foundation
import XCTest

/// The limit table (`Limit`) is the one declaration of the run's limits: the wire form follows it
/// for every limit, and protocol.md's limits table says the same.
final class LimitTableTests: XCTestCase {
    /// A distinct value per limit, so a limit read or written under another's key shows.
    func distinctValues() -> RunLimits {
        RunLimits { limit in Int64(Limit.allCases.firstIndex(of: limit)! + 1) * 1000 + 7 }
    }

    func test_every_limit_goes_on_the_wire_under_its_key_and_comes_back() throws {
        let limits = distinctValues()
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: JSONEncoder().encode(limits)) as? [String: Any])
        XCTAssertEqual(Set(json.keys), Set(Limit.allCases.map(\.key)))
        for limit in Limit.allCases {
            XCTAssertEqual(json[limit.key] as? Int64, limits[limit], limit.key)
        }
        XCTAssertEqual(try JSONDecoder().decode(RunLimits.self, from: JSONEncoder().encode(limits)), limits)
        XCTAssertEqual(try JSONEncoder().encode(RunLimits()), Data("{}".utf8), "an absent limit is left out, not null")
    }

    func test_the_daemon_reads_every_limit_by_its_key() throws {
        let limits = distinctValues()
        let object = JSONValue.object(Dictionary(uniqueKeysWithValues: Limit.allCases.map { ($0.key, JSONValue.int(limits[$0]!)) }))
        let params = try RunParams(params: .object(["language": .string("py"), "code": .string("1"), "limits": object]))
        XCTAssertEqual(params.limits, limits)
    }

    func test_a_bad_value_of_any_limit_is_refused_naming_it() {
        for limit in Limit.allCases {
            for bad: JSONValue in [.int(0), .int(-1), .string("5"), .double(1.5)] {
                do {
                    _ = try RunParams(params: .object(["language": .string("py"), "code": .string("1"),
                                                       "limits": .object([limit.key: bad])]))
                    XCTFail("\(limit.key) = \(bad) was accepted")
                } catch {
                    XCTAssertEqual(error.code, -32602)
                    XCTAssertTrue(error.message.hasPrefix("params.limits.\(limit.key) must be a positive integer"), error.message)
                }
            }
        }
    }

    func test_an_unknown_limit_is_refused_listing_the_known_ones() {
        do {
            _ = try RunParams(params: .object(["language": .string("py"), "code": .string("1"),
                                               "limits": .object(["wall": .int(1)])]))
            XCTFail("accepted")
        } catch {
            XCTAssertTrue(error.message.hasPrefix("params.limits.wall is not a known field"), error.message)
            for limit in Limit.allCases { XCTAssertTrue(error.message.contains(limit.key), error.message) }
        }
    }

    func test_each_row_is_consistent() {
        for limit in Limit.allCases {
            let row = limit.row
            XCTAssertGreaterThanOrEqual(row.shippedDefault, row.minimum, limit.key)
            XCTAssertLessThanOrEqual(row.shippedDefault, row.shippedMaximum, limit.key)
            XCTAssertLessThan(row.shippedMaximum, row.ceiling, limit.key)
            XCTAssertEqual(row.minimum > 1, row.minimumReason != nil, "\(limit.key): a minimum above 1 says why")
            XCTAssertEqual(limit.flag, limit.key.replacingOccurrences(of: "_", with: "-"))
        }
    }

    /// protocol.md is the spec: its limits table has exactly the table's rows, with the same unit,
    /// shipped default, maximum and meaning.
    func test_protocol_md_lists_the_limits_of_the_table() throws {
        let spec = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("protocol.md")
        let text = try String(contentsOf: spec, encoding: .utf8)
        let lines = text.split(separator: "\n").map(String.init)
        let header = try XCTUnwrap(lines.firstIndex(of: "| field | unit | default | maximum | meaning |"))
        let rows = lines[(header + 2)...].prefix { $0.hasPrefix("|") }.map { line in
            line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        XCTAssertEqual(rows.map { $0[0] }, Limit.allCases.map { "`\($0.key)`" })
        func leadingNumber(_ s: String) -> Int64? { Int64(s.prefix { $0.isNumber }) }
        for (row, limit) in zip(rows, Limit.allCases) {
            XCTAssertEqual(row[1], limit.row.unit.rawValue, limit.key)
            XCTAssertEqual(leadingNumber(row[2]), limit.row.shippedDefault, limit.key)
            XCTAssertEqual(leadingNumber(row[3]), limit.row.shippedMaximum, limit.key)
            XCTAssertEqual(row[4], limit.row.meaning, limit.key)
        }
    }
}
