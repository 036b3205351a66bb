import CCodesand
import CodesandProtocol
import CodesandTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The C client (clients/c) against a real daemon (as root): built with its own Makefile and run as
/// the C program a bot author would write, and linked into Swift through the CCodesand target.
final class CClientTests: XCTestCase {
    static let sourceDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("clients/c").path
    var daemon: LiveDaemon!

    override func setUp() async throws {
        try requireRoot()
        daemon = try await LiveDaemon(pool: 2)
    }

    override func tearDown() async throws {
        await daemon?.shutdown()
    }

    func test_the_c_test_program_runs_snippets_and_gets_their_output() throws {
        let build = FileManager.default.temporaryDirectory.appendingPathComponent("codesand-c-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: build, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: build) }
        let log = build.appendingPathComponent("make.log").path
        var env = ProcessInfo.processInfo.environment
        env["CODESAND_SOCKET"] = daemon.path
        // `make test` builds the static and shared library with pkg-config's json-c flags, then the
        // test program, and runs it: print(6*7) must print "42\n", and the other checks in test_client.c
        // (a gcc compile error's messages, compile_flags, the pids and output_lines limits, streaming).
        let make = try ChildProcess(["/usr/bin/make", "-C", Self.sourceDirectory, "BUILDDIR=\(build.path)", "all", "test"],
                                    environment: env, outputPath: log)
        let status = make.wait(timeout: .seconds(180))
        if status == nil { make.stop() }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("test_client: all checks passed"), output)
        for artifact in ["libcodesand.a", "libcodesand.so", "codesand.pc"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: build.appendingPathComponent(artifact).path), artifact)
        }
    }

    func test_the_c_library_called_from_swift_runs_a_snippet() throws {
        var conn: OpaquePointer?
        XCTAssertEqual(codesand_connect(daemon.path, &conn), 0, String(cString: strerror(errno)))
        defer { codesand_close(conn) }
        var result = codesand_result()
        defer { codesand_result_free(&result) }
        let rc = codesand_run(conn, "python3", "print(6*7)", nil, 20_000, &result)
        XCTAssertEqual(rc, 0, result.error_message.map { String(cString: $0) } ?? "")
        XCTAssertEqual(result.stdout_text.map { String(cString: $0) }, "42\n")
        XCTAssertEqual(String(cString: result.status), "ok")
        XCTAssertEqual(result.exit_code, 0)
    }

    /// A compile_error's messages are only in the compile stage: a C bot must reach them there.
    func test_the_c_library_exposes_a_gcc_compile_error() throws {
        var conn: OpaquePointer?
        XCTAssertEqual(codesand_connect(daemon.path, &conn), 0)
        defer { codesand_close(conn) }
        var result = codesand_result()
        defer { codesand_result_free(&result) }
        let rc = codesand_run(conn, "gcc", "int main(void) { return nope; }", nil, 60_000, &result)
        XCTAssertEqual(rc, 0, result.error_message.map { String(cString: $0) } ?? "")
        XCTAssertEqual(String(cString: result.status), "compile_error")
        XCTAssertEqual(result.stdout_len, 0)
        let compile = try XCTUnwrap(result.compile)
        XCTAssertEqual(String(cString: compile.pointee.status), "error")
        XCTAssertNotEqual(compile.pointee.exit_code, 0)
        XCTAssertTrue(String(cString: compile.pointee.stderr_text).contains("nope"))
    }

    func test_the_c_library_names_a_json_rpc_error_and_a_missing_socket() throws {
        var conn: OpaquePointer?
        XCTAssertEqual(codesand_connect(daemon.path, &conn), 0)
        defer { codesand_close(conn) }
        var result = codesand_result()
        defer { codesand_result_free(&result) }
        let rc = codesand_run(conn, "cobol-9000", "DISPLAY 1.", nil, 20_000, &result)
        XCTAssertEqual(rc, Int32(CODESAND_RPC_UNKNOWN_LANGUAGE.rawValue))
        XCTAssertEqual(String(cString: codesand_strerror(rc)), "unknown language")
        XCTAssertTrue(result.error_message.map { String(cString: $0) }?.contains("cobol-9000") == true)

        var none: OpaquePointer?
        XCTAssertEqual(codesand_connect("/nonexistent/codesand.sock", &none), Int32(CODESAND_ERR_CONNECT.rawValue))
        XCTAssertEqual(errno, ENOENT)
        XCTAssertNil(none)
    }

    func test_the_c_client_reconnects_after_the_daemon_restarts() async throws {
        var conn: OpaquePointer?
        XCTAssertEqual(codesand_connect(daemon.path, &conn), 0)
        defer { codesand_close(conn) }
        var result = codesand_result()
        XCTAssertEqual(codesand_run(conn, "python3", "print(1)", nil, 20_000, &result), 0)
        codesand_result_free(&result)
        await daemon.stopServing()
        try await daemon.serve()
        let rc = codesand_run(conn, "python3", "print(2)", nil, 20_000, &result)
        XCTAssertEqual(rc, 0, result.error_message.map { String(cString: $0) } ?? "")
        XCTAssertEqual(result.stdout_text.map { String(cString: $0) }, "2\n")
        codesand_result_free(&result)
    }
}

/// The C client's limits (CODESAND_LIMITS in codesand.h, which makes both its request fields and
/// their JSON) are exactly the daemon's (`Limit`): C cannot read the Swift table, so this keeps them
/// from drifting apart. No daemon needed.
final class CClientLimitListTests: XCTestCase {
    func test_the_c_clients_limit_list_names_exactly_the_daemons_limits() throws {
        let list = try XCTUnwrap(codesand_limit_keys())
        var keys: [String] = []
        while let key = list[keys.count] { keys.append(String(cString: key)) }
        XCTAssertEqual(keys.count, Limit.allCases.count, "\(keys)")
        XCTAssertEqual(Set(keys), Set(Limit.allCases.map(\.key)))
    }
}
