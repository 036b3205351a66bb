import CodesandLinux
import Dispatch
import Foundation
import Glibc
import XCTest

/// The version probes' runner: what the probe inherits and a probe that writes more than is kept.
final class HostCommandTests: XCTestCase {
    final class Box: @unchecked Sendable { var value: String?? }

    /// Runs `body` on another thread; nil when it has not returned within `seconds` (a hang).
    func within(_ seconds: Double, _ body: @escaping @Sendable () -> String?) -> String?? {
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            box.value = body()
            done.signal()
        }
        return done.wait(timeout: .now() + seconds) == .success ? box.value : nil
    }

    func test_a_probe_does_not_inherit_the_daemons_file_descriptors() throws {
        // Like the listening socket systemd passes: an fd without O_CLOEXEC.
        let fd = open("/dev/null", O_RDONLY)
        XCTAssertGreaterThan(fd, 2)
        defer { close(fd) }
        // The control: the probe's own stdout is there, so readlink works and nil means "not open".
        XCTAssertNotNil(HostCommand.output(["/usr/bin/readlink", "/proc/self/fd/1"]))
        XCTAssertNil(HostCommand.output(["/usr/bin/readlink", "/proc/self/fd/\(fd)"]), "fd \(fd) reached the probe")
    }

    func test_a_probe_writing_past_max_bytes_is_read_to_its_end_not_left_blocked() throws {
        // 1 MB is far past a pipe's 64 KiB: a reader that stops at maxBytes leaves head blocked for good.
        let out = within(20) { HostCommand.output(["/usr/bin/head", "-c", "1000000", "/dev/zero"], maxBytes: 100) }
        guard let out else { return XCTFail("HostCommand hung on a probe that writes 1 MB") }
        XCTAssertEqual(out?.utf8.count, 100)
    }
}
