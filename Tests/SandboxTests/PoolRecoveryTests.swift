import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The real daemon serving from an image that is removed while it serves: every slot's prepare then
/// fails for real (the C init's read-only bind of the image's /usr). Requests must be answered at
/// once with -32603 naming the cause, not "busy" after max_wait; a reload after the fix must bring
/// the pool back at once, not after the slots' back-off.
final class PoolRecoveryTests: XCTestCase {
    var dir = ""

    override func setUp() async throws {
        try requireRoot()
        let name = "codesand-recover-\(getpid())-\(UInt32.random(in: 0...99_999))"
        dir = "/tmp/\(name)"
        // An image made of the host's own system: /usr and /etc as symlinks (a bind mount follows them).
        let image = "\(dir)/image"
        try FileManager.default.createDirectory(atPath: image, withIntermediateDirectories: true)
        for (link, target) in [("usr", "/usr"), ("etc", "/etc"), ("bin", "usr/bin"), ("sbin", "usr/sbin"),
                               ("lib", "usr/lib"), ("lib64", "usr/lib64")] {
            try FileManager.default.createSymbolicLink(atPath: "\(image)/\(link)", withDestinationPath: target)
        }
        // Its own cgroups, state dir and uids; the queue's max wait is the default 10 s.
        try """
        [pool]
        size = 2
        spare = 0
        [sandbox]
        cgroup_name = "\(name)"
        state_dir = "\(dir)/state"
        uid_base = \(2_143_000_000 + UInt32.random(in: 0...99_999) * 8)
        rootfs = "image"
        image = "\(image)"
        """.write(toFile: "\(dir)/config.toml", atomically: true, encoding: .utf8)
    }

    override func tearDown() async throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func bash(_ id: Int, _ code: String) -> String {
        #"{"jsonrpc":"2.0","id":\#(id),"method":"run","params":{"language":"bash","code":"\#(code)"}}"#
    }

    func status(_ c: RawClient) -> [String: Any] {
        result(c.call(#"{"jsonrpc":"2.0","id":0,"method":"status"}"#)) ?? [:]
    }

    func errorMessage(_ reply: [String: Any]?) -> String { (reply?["error"] as? [String: Any])?["message"] as? String ?? "" }

    func test_an_image_removed_while_serving_fails_runs_at_once_with_the_cause_and_a_reload_recovers_at_once() throws {
        let sock = "\(dir)/s.sock"
        let daemon = try TestProcess([productsDirectory() + "/codesandd", "--config", "\(dir)/config.toml", "--socket", sock],
                                     log: "\(dir)/daemon.log")
        defer { daemon.signal(SIGTERM); _ = daemon.wait(timeout: 20) }
        XCTAssertTrue(waitForSocket(sock), daemon.log)
        let control = try RawClient(path: sock), running = try RawClient(path: sock), queued = try RawClient(path: sock)
        XCTAssertEqual(result(control.call(bash(1, "echo from the image")))?["stdout"] as? String, "from the image\n", daemon.log)

        // Both slots run; two more requests wait for them; then the image goes away.
        XCTAssertTrue(CgroupDetectProbe.wait { (self.status(control)["slots"] as? [String: Int])?["ready"] == 2 })
        for id in [11, 12] { running.send(bash(id, "sleep 1.5; echo held") + "\n") }
        XCTAssertTrue(CgroupDetectProbe.wait { self.status(control)["running"] as? Int == 2 })
        for id in [21, 22] { queued.send(bash(id, "echo queued") + "\n") }
        XCTAssertTrue(CgroupDetectProbe.wait { self.status(control)["queued"] as? Int == 2 })
        try FileManager.default.moveItem(atPath: "\(dir)/image", toPath: "\(dir)/image.away")

        // The runs in flight end normally (their sandboxes were built); their slots' resets then fail,
        // and the waiting requests are answered as soon as no slot is left that could come back.
        for _ in 0..<2 { XCTAssertEqual(result(running.readJSON() as? [String: Any])?["stdout"] as? String, "held\n") }
        let heldEnded = Date()
        for _ in 0..<2 {
            let reply = queued.readJSON() as? [String: Any]
            XCTAssertEqual(errorCode(reply), -32603, "\(reply ?? [:])")
            XCTAssertTrue(errorMessage(reply).contains("sandbox.image \(dir)/image is gone"), errorMessage(reply))
        }
        XCTAssertLessThan(Date().timeIntervalSince(heldEnded), 2, "queued requests waited (max_wait is 10 s)")

        // A new request: answered at once with the cause and what to do.
        let asked = Date()
        let refused = control.call(bash(3, "echo 1"))
        XCTAssertLessThan(Date().timeIntervalSince(asked), 2, "answered at once, not after max_wait (10 s)")
        XCTAssertEqual(errorCode(refused), -32603, "\(refused ?? [:])")
        XCTAssertTrue(errorMessage(refused).contains("sandbox.image \(dir)/image is gone"), errorMessage(refused))
        XCTAssertTrue(errorMessage(refused).contains("pool reload"), errorMessage(refused))

        // status says why; metrics too.
        let broken = status(control)
        XCTAssertEqual((broken["slots"] as? [String: Int])?["broken"], 2, "\(broken)")
        XCTAssertTrue((broken["pool_error"] as? String)?.contains("sandbox.image \(dir)/image is gone") == true, "\(broken)")
        let brokenSlots = broken["broken_slots"] as? [[String: Any]] ?? []
        XCTAssertEqual(brokenSlots.compactMap { $0["slot"] as? Int }.sorted(), [0, 1], "\(broken)")
        XCTAssertTrue(brokenSlots.allSatisfy { ($0["error"] as? String)?.contains("is gone") == true }, "\(broken)")
        let metrics = control.call(#"{"jsonrpc":"2.0","id":4,"method":"metrics"}"#)?["result"] as? String ?? ""
        XCTAssertTrue(metrics.contains("codesand_pool_unavailable 1\n"), metrics)

        // Let the back-off grow past what the recovery may take (each slot's next try ≥ 5 s away).
        XCTAssertTrue(CgroupDetectProbe.wait(timeout: 20) {
            let slots = self.status(control)["broken_slots"] as? [[String: Any]] ?? []
            return slots.count == 2 && slots.allSatisfy { ($0["retry_in_ms"] as? Int ?? 0) >= 5000 }
        }, "\(status(control))")

        // Fixed, and reloaded: the next run is served at once, not when the back-off ends.
        try FileManager.default.moveItem(atPath: "\(dir)/image.away", toPath: "\(dir)/image")
        let reload = control.call(#"{"jsonrpc":"2.0","id":5,"method":"pool.reload"}"#)
        XCTAssertEqual(result(reload)?["rootfs"] as? String, "image", "\(reload ?? [:])")
        let reloaded = Date()
        XCTAssertEqual(result(control.call(bash(6, "echo back")))?["stdout"] as? String, "back\n", daemon.log)
        XCTAssertLessThan(Date().timeIntervalSince(reloaded), 2, "the reload did not end the back-off")
        let healthy = status(control)
        XCTAssertNil(healthy["pool_error"], "\(healthy)")
        XCTAssertEqual((healthy["broken_slots"] as? [Any])?.count, 0, "\(healthy)")
    }
}
