import CSandbox
import Glibc
import XCTest

@testable import CodesandLinux

/// A pipe read says what it found as a value, whatever `errno` held before.
final class PipeReadTests: XCTestCase {
    var fds: [Int32] = [-1, -1]

    override func setUp() {
        XCTAssertEqual(cs_pipe_cloexec(&fds), 0)
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
    }

    override func tearDown() {
        for fd in fds where fd >= 0 { close(fd) }
    }

    func write<T>(_ value: T) {
        var v = value
        XCTAssertEqual(withUnsafeBytes(of: &v) { Glibc.write(fds[1], $0.baseAddress, $0.count) }, MemoryLayout<T>.size)
    }

    func closeWriter() {
        close(fds[1])
        fds[1] = -1
    }

    func test_a_whole_record_then_nothing_yet_then_the_end() {
        var record = cs_report()
        record.kind = Int32(CS_REPORT_EXEC_FAILED.rawValue)
        record.err = ENOENT
        write(record)
        guard case .value(let got) = readRecord(cs_report.self, from: fds[0]) else { return XCTFail("no record") }
        XCTAssertEqual(got.err, ENOENT)
        guard case .wouldBlock = readRecord(cs_report.self, from: fds[0]) else { return XCTFail("an empty pipe whose writer is there") }
        closeWriter()
        guard case .end = readRecord(cs_report.self, from: fds[0]) else { return XCTFail("EOF") }
    }

    /// The bug this type fixes: EOF after an EAGAIN left `errno` at EAGAIN, and EOF read as "nothing yet".
    func test_the_end_after_a_would_block_is_the_end_whatever_errno_holds() {
        guard case .wouldBlock = readRecord(cs_stage_status.self, from: fds[0]) else { return XCTFail("would block") }
        XCTAssertEqual(errno, EAGAIN)
        closeWriter()
        guard case .end = readRecord(cs_stage_status.self, from: fds[0]) else { return XCTFail("EOF read as would-block") }
    }

    func test_a_cut_record_is_the_end() {
        write(Int32(1))  // half a cs_stage_status: its writer died in between
        closeWriter()
        guard case .end = readRecord(cs_stage_status.self, from: fds[0]) else { return XCTFail("a part of a record") }
    }

    /// Sockets of every kind count, accepted or still waiting in a listener's backlog.
    func test_sockstat_counts_the_namespaces_tcp_sockets() {
        let v4 = "sockets: used 7\nTCP: inuse 7 orphan 0 tw 0 alloc 8 mem 54\nUDP: inuse 0 mem 0\n"
        XCTAssertEqual(SocketQueues.inUse(sockstat: v4, protocol: "TCP:"), 7)
        XCTAssertEqual(SocketQueues.inUse(sockstat: "TCP6: inuse 1\nUDP6: inuse 0\n", protocol: "TCP6:"), 1)
        XCTAssertNil(SocketQueues.inUse(sockstat: "UDP: inuse 3\n", protocol: "TCP:"))
    }
}
