import CodesandProtocol
import Foundation
import XCTest

final class JSONParserTests: XCTestCase {
    func parse(_ s: String) throws(JSONParseError) -> JSONValue { try JSONParser.parse(Array(s.utf8)) }

    func syntaxOffset(_ bytes: [UInt8]) -> Int? {
        do {
            _ = try JSONParser.parse(bytes)
            return nil
        } catch {
            if case .syntax(let offset, _) = error { return offset }
            return nil
        }
    }

    func test_values_of_every_kind() throws {
        XCTAssertEqual(try parse(#" {"a": [1, -2, 3.5, 1e3, true, false, null, "x"], "b": {}} "#),
                       .object(["a": .array([.int(1), .int(-2), .double(3.5), .double(1000), .bool(true), .bool(false), .null, .string("x")]),
                                "b": .object([:])]))
        XCTAssertEqual(try parse("[]"), .array([]))
        XCTAssertEqual(try parse("\"\""), .string(""))
    }

    func test_escapes_and_surrogate_pairs_decode() throws {
        XCTAssertEqual(try parse(#""a\"\\\/\b\f\n\r\t\u00e9\u0000\ud83d\ude00""#), .string("a\"\\/\u{8}\u{c}\n\r\té\u{0}😀"))
        XCTAssertEqual(try parse("\"é😀\""), .string("é😀"))
    }

    func test_integers_past_64_bits_are_doubles_and_64_bit_ones_exact() throws {
        XCTAssertEqual(try parse("9223372036854775807"), .int(Int64.max))
        XCTAssertEqual(try parse("-9223372036854775808"), .int(Int64.min))
        XCTAssertEqual(try parse("9223372036854775808"), .double(9223372036854775808))
        XCTAssertEqual(try parse("1e400"), .double(.infinity))
    }

    func test_what_rfc_8259_forbids_is_a_syntax_error_at_its_byte() {
        let bad: [(String, Int)] = [
            ("", 0), ("[1,]", 3), ("{\"a\":1,}", 7), ("01", 1), ("1.", 2), (".5", 0), ("+1", 0), ("1e", 2), ("-", 1),
            ("[1 2]", 3), ("{\"a\" 1}", 5), ("{a:1}", 1), ("tru", 0), ("nul", 0), ("\"\\x\"", 2), ("\"\\u12\"", 3),
            ("\"abc", 4), ("[1]]", 3), ("'a'", 0), ("NaN", 0), ("Infinity", 0), ("\"\\ud800\"", 7), ("\"\\udc00\"", 7),
        ]
        for (text, offset) in bad {
            XCTAssertEqual(syntaxOffset(Array(text.utf8)), offset, text)
        }
        XCTAssertEqual(syntaxOffset([0x22, 0x09, 0x22]), 1, "a raw tab in a string")
        XCTAssertEqual(syntaxOffset([0x22, 0x00, 0x22]), 1, "a raw NUL in a string")
        XCTAssertEqual(syntaxOffset([0x22, 0x61, 0xff, 0xfe, 0x22]), 1, "invalid UTF-8 in a string")
        XCTAssertEqual(syntaxOffset([0x22, 0xc3, 0x22]), 1, "a cut UTF-8 sequence")
        XCTAssertEqual(syntaxOffset([0x22, 0xed, 0xa0, 0x80, 0x22]), 1, "a surrogate encoded in UTF-8")
        XCTAssertEqual(syntaxOffset([0xef, 0xbb, 0xbf, 0x31]), 0, "a byte order mark")
    }

    func test_nesting_past_64_is_too_deep_and_64_is_accepted() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        XCTAssertNoThrow(try parse(ok))
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        XCTAssertThrowsError(try parse(deep)) { XCTAssertEqual($0 as? JSONParseError, .tooDeep) }
        let objects = String(repeating: #"{"a":"#, count: 65) + "1" + String(repeating: "}", count: 65)
        XCTAssertThrowsError(try parse(objects)) { XCTAssertEqual($0 as? JSONParseError, .tooDeep) }
        // A MiB of "[" stops at the limit, without reading the rest.
        XCTAssertThrowsError(try JSONParser.parse([UInt8](repeating: 0x5b, count: 1 << 20))) {
            XCTAssertEqual($0 as? JSONParseError, .tooDeep)
        }
    }

    func test_a_repeated_member_name_is_refused() {
        XCTAssertThrowsError(try parse(#"{"a":1,"b":2,"a":3}"#)) { XCTAssertEqual($0 as? JSONParseError, .duplicateKey("a")) }
        XCTAssertNoThrow(try parse(#"[{"a":1},{"a":2}]"#))
    }

    func test_json_numbers_are_checked_against_the_grammar() {
        for good in ["0", "-0", "12345678901234567890", "1.50", "1E+2", "-1e-7"] { XCTAssertNotNil(JSONNumber(good), good) }
        for bad in ["", " 1", "1 ", "01", "1.", "+1", "1,2", "1}", "\"1\"", "inf"] { XCTAssertNil(JSONNumber(bad), bad) }
    }

    /// The hostile lines of issue 13 (a 1 KB line of a 500-deep array cost a second of CPU before):
    /// a MiB of each is parsed in well under a second, even in a debug build.
    func test_a_mib_of_the_worst_inputs_parses_in_linear_time() throws {
        for (name, line) in HostileJSON.all(bytes: 1 << 20) {
            let start = ContinuousClock.now
            _ = try? JSONParser.parse(Array(line.utf8))
            let took = ContinuousClock.now - start
            XCTAssertLessThan(took, .seconds(3), "\(name): \(took)")
        }
    }
}

/// The worst inputs we know for a JSON parser, each about `bytes` long and valid JSON.
enum HostileJSON {
    static func all(bytes: Int) -> [(String, String)] {
        [("nested arrays 60 deep, repeated", repeated(String(repeating: "[", count: 60) + String(repeating: "]", count: 60), bytes)),
         ("numbers", repeated("-1.2345678901234567890123e-300", bytes)),
         ("a long number", "[1" + String(repeating: "7", count: bytes - 4) + "]"),
         ("escapes", "[\"" + String(repeating: #"\u00e9\ud83d\ude00\n\""#, count: bytes / 24) + "\"]"),
         ("small objects", repeated(#"{"a":{"b":[{}]}}"#, bytes)),
         ("distinct keys", "[{" + (0..<(bytes / 12)).map { #""k\#($0)":0"# }.joined(separator: ",") + "}]")]
    }

    static func repeated(_ item: String, _ bytes: Int) -> String {
        "[" + Array(repeating: item, count: max(1, bytes / (item.utf8.count + 1))).joined(separator: ",") + "]"
    }
}
