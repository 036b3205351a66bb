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

    static var awkwardResults: [RunResult] {
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
        return results
    }

    func testRunResultsAsJSONEncoderWritesThem() throws {
        let results = Self.awkwardResults
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

    /// The client's reader gives what JSONDecoder gives: the same result, or an error for both.
    func testRunResultsReadAsJSONDecoderReadsThem() throws {
        for r in Self.awkwardResults {
            let bytes = Array(writerText(r).utf8)
            XCTAssertEqual(try RunResult.read(bytes), r)
        }
        let base = writerText(Self.awkwardResults[1])
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(base.utf8)) as? [String: Any])
        var variants: [String] = []
        func variant(_ change: (inout [String: Any]) -> Void) throws {
            var o = object
            change(&o)
            variants.append(String(decoding: try JSONSerialization.data(withJSONObject: o), as: UTF8.self))
        }
        for key in object.keys.sorted() {
            try variant { $0[key] = nil }                      // absent
            try variant { $0[key] = NSNull() }                 // null
            try variant { $0[key] = "1" }                      // a string
            try variant { $0[key] = 7 }                        // a number
            try variant { $0[key] = [1] }                      // an array
        }
        try variant { $0["exit_code"] = 3.0 }
        try variant { $0["exit_code"] = 3.5 }
        try variant { $0["exit_code"] = 1 << 40 }
        try variant { $0["wall_ms"] = -2.0 }
        try variant { $0["status"] = "nope" }
        try variant { $0["unknown_member"] = ["x": 1] }
        try variant { $0["output"] = [["stream": "stdout", "text": "a"], ["stream": "other", "text": "b"]] }
        try variant { $0["output"] = [["stream": "stderr"]] }
        try variant { $0["compile"] = object }
        try variant { $0["compile"] = ["status": "ok"] }
        try variant { $0["cached"] = true }
        variants += ["[]", "null", "{}", #"{"status":"ok"}"#]
        var accepted = 0
        for text in variants {
            let decoded = try? JSONDecoder().decode(RunResult.self, from: Data(text.utf8))
            let read = try? RunResult.read(Array(text.utf8))
            XCTAssertEqual(read, decoded, text)
            if read != nil { accepted += 1 }
        }
        // Both kinds were tried: documents that read (nulls of optional members, 3.0, extras) and not.
        XCTAssertGreaterThan(accepted, 8)
        XCTAssertGreaterThan(variants.count - accepted, 30)
    }

    /// A `run` request written by hand is what JSONEncoder writes for the same envelope.
    func testRunRequestsAsJSONEncoderWritesThem() throws {
        struct Envelope: Encodable {
            let jsonrpc = "2.0"
            let id: RPCID?
            let method: String
            let params: RunParams?
        }
        var params: [RunParams] = [RunParams(language: "python3", code: "print(1)")]
        for (i, s) in Self.awkwardStrings.enumerated() {
            params.append(RunParams(language: s, code: String(s.reversed()), stdin: i % 2 == 0 ? nil : s,
                                    args: i % 3 == 0 ? nil : [s, "", "-x"], limits: i % 4 == 0 ? nil : RunLimits(
                                        wallMs: i % 2 == 0 ? nil : Int64(i), cpuMs: 1, memoryBytes: Int64.max,
                                        pids: i % 3 == 0 ? nil : 7, outputBytes: nil, outputLines: i % 5 == 0 ? nil : 3),
                                    requester: i % 5 == 0 ? nil : "nick@#chan\(s)", compileFlags: i % 2 == 0 ? [] : ["-O2", s],
                                    stream: i % 3 == 1 ? true : (i % 3 == 2 ? false : nil), prestart: i % 4 == 1 ? false : nil))
        }
        params.append(RunParams(language: "c", code: "", limits: RunLimits()))
        let ids: [RPCID?] = [.int(1), .int(-9), .string("a\"b/\u{1}é"), nil]
        for (i, p) in params.enumerated() {
            let id = ids[i % ids.count]
            let written = String(decoding: try RPCEncoder.request(id: id, method: "run", params: p), as: UTF8.self)
            XCTAssertEqual(written, try encoderText(Envelope(id: id, method: "run", params: p)))
            XCTAssertEqual(try RunParams(params: try JSONParser.parse(Array(written.utf8)).objectValue?["params"]), p)
        }
    }
}
