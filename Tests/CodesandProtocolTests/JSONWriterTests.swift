@testable import CodesandProtocol
import Foundation
import XCTest

/// The hand-written reply encoder must give exactly what JSONEncoder gives (clients, tests and the
/// protocol document were written against that).
final class JSONWriterTests: XCTestCase {
    private func encoderText(_ value: some Encodable) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try e.encode(value), as: UTF8.self)
    }

    private func writerText(_ value: some JSONWritable) -> String {
        var w = JSONWriter()
        value.write(to: &w)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    static let awkwardStrings: [String] = [
        "", "1\n", "plain ascii", "quote \" and backslash \\ and slash / and //",
        String((0..<0x20).map { Character(Unicode.Scalar($0)!) }),  // every control character
        "\u{7F} del, \u{80} \u{9F} C1, \u{2028}\u{2029} separators, \u{FEFF} bom",
        "é ü ß 漢字 🙂 👩‍👩‍👧 \u{10FFFF}", "\u{FFFD}\u{FFFD} replacement", "tab\tend\r\n",
        String(repeating: "a\"b\\c\u{1}", count: 500),
    ]

    func testStringsAsJSONEncoderWritesThem() throws {
        for s in Self.awkwardStrings {
            var w = JSONWriter()
            w.string(s)
            XCTAssertEqual(String(decoding: w.bytes, as: UTF8.self), try encoderText(s), "string \(s.debugDescription)")
            XCTAssertEqual(JSONText.quoted(s), try encoderText(s))
        }
    }

    func testRunResultsAsJSONEncoderWritesThem() throws {
        var results: [RunResult] = []
        for (i, s) in Self.awkwardStrings.enumerated() {
            results.append(RunResult(status: [.ok, .error, .signal, .timeout, .oom, .outputLimit, .compileError][i % 7],
                                     exitCode: i % 3 == 0 ? nil : Int32(i - 5), signal: i % 2 == 0 ? nil : "SIGKILL\(s)",
                                     timedOut: i % 2 == 0, oomKilled: i % 3 == 1, truncated: i % 4 == 2,
                                     stdout: s, stderr: String(s.reversed()),
                                     output: (0..<(i % 4)).map { OutputChunk(stream: $0 % 2 == 0 ? .stdout : .stderr, text: s) },
                                     wallMs: Int64(i) * 1_000_003, cpuMs: -Int64(i), memoryPeakBytes: Int64.max - Int64(i)))
        }
        var compiled = results[3]
        var stage = results[4]
        stage.cached = true
        compiled.compile = stage
        results.append(compiled)
        var uncached = results[1]
        var stage2 = results[2]
        stage2.cached = false
        uncached.compile = stage2
        results.append(uncached)
        for r in results {
            XCTAssertEqual(writerText(r), try encoderText(r))
            // and it reads back as the same result
            XCTAssertEqual(try JSONDecoder().decode(RunResult.self, from: Data(writerText(r).utf8)), r)
        }
    }

    func testTheReplyEnvelopeUsesIt() throws {
        let r = RunResult(status: .ok, exitCode: 0, signal: nil, timedOut: false, oomKilled: false, truncated: false,
                          stdout: "1\n", stderr: "", output: [OutputChunk(stream: .stdout, text: "1\n")], wallMs: 3, cpuMs: 1,
                          memoryPeakBytes: 4096)
        let line = String(decoding: try RPCEncoder.result(id: .int(7), r), as: UTF8.self)
        XCTAssertEqual(line, #"{"id":7,"jsonrpc":"2.0","result":"# + (try encoderText(r)) + "}")
    }
}
