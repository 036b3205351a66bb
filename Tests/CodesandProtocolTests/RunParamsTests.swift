import CodesandProtocol
import Foundation
import XCTest

final class RunParamsTests: XCTestCase {
    func params(_ json: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
    }

    func error(_ json: String) throws -> RPCError? {
        do {
            _ = try RunParams(params: try params(json))
            return nil
        } catch {
            return error as? RPCError
        }
    }

    func test_full_params_are_read() throws {
        let p = try RunParams(params: params(#"{"language":"py","code":"x","stdin":"in","args":["a","b"],"limits":{"wall_ms":100,"memory_bytes":1048576},"requester":"nick@#c"}"#))
        XCTAssertEqual(p.language, "py")
        XCTAssertEqual(p.args, ["a", "b"])
        XCTAssertEqual(p.limits?.wallMs, 100)
        XCTAssertEqual(p.limits?.memoryBytes, 1 << 20)
        XCTAssertNil(p.limits?.pids)
        XCTAssertEqual(p.requester, "nick@#c")
    }

    func test_missing_code_names_the_field() throws {
        let e = try XCTUnwrap(error(#"{"language":"python3"}"#))
        XCTAssertEqual(e.code, -32602)
        XCTAssertTrue(e.message.contains("params.code"), e.message)
    }

    func test_wrong_types_name_the_field() throws {
        XCTAssertTrue(try XCTUnwrap(error(#"{"language":1,"code":"x"}"#)).message.contains("params.language"))
        XCTAssertTrue(try XCTUnwrap(error(#"{"language":"a","code":"x","args":["a",2]}"#)).message.contains("params.args[1]"))
        XCTAssertTrue(try XCTUnwrap(error(#"{"language":"a","code":"x","limits":{"wall_ms":"5"}}"#)).message.contains("params.limits.wall_ms"))
        XCTAssertTrue(try XCTUnwrap(error(#"{"language":"a","code":"x","limits":{"pids":-1}}"#)).message.contains("params.limits.pids"))
        XCTAssertTrue(try XCTUnwrap(error(#"{"language":"a","code":"x","limits":{"cpu_ms":1.5}}"#)).message.contains("params.limits.cpu_ms"))
    }

    func test_unknown_fields_are_rejected_by_name() throws {
        XCTAssertTrue(try XCTUnwrap(error(#"{"language":"a","code":"x","limit":{}}"#)).message.contains("params.limit"))
        XCTAssertTrue(try XCTUnwrap(error(#"{"language":"a","code":"x","limits":{"wall":1}}"#)).message.contains("params.limits.wall"))
    }

    func test_positional_params_are_rejected() throws {
        XCTAssertEqual(try XCTUnwrap(error(#"["python3","print(1)"]"#)).code, -32602)
        XCTAssertEqual(try XCTUnwrap(error("[]")).code, -32602, "empty is still by position")
    }

    func test_result_always_has_exit_code_and_signal_keys() throws {
        let r = RunResult(status: .timeout, exitCode: nil, signal: nil, timedOut: true, oomKilled: false, truncated: false,
                          stdout: "", stderr: "", output: [], wallMs: 1, cpuMs: 1, memoryPeakBytes: 1)
        let obj = try JSONSerialization.jsonObject(with: JSONEncoder().encode(r)) as! [String: Any]
        XCTAssertTrue(obj["exit_code"] is NSNull)
        XCTAssertTrue(obj["signal"] is NSNull)
        XCTAssertEqual(obj["status"] as? String, "timeout")
        XCTAssertEqual(try JSONDecoder().decode(RunResult.self, from: JSONEncoder().encode(r)), r)
    }
}
