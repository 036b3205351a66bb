import CodesandCore
import CodesandProtocol
import Foundation
import XCTest

/// A slot's runs share its base mount namespace (the read-only root); nothing one run does there
/// may show in the next. One slot, so consecutive runs share it.
final class BaseMountTests: LiveServiceTestCase {
    override var poolSize: Int { 1 }

    /// The overlays' directory inode numbers are the host's (xino), not a counter the base would
    /// carry from run to run: a run cannot tell how many directories, or which, the last one looked up.
    func test_directory_inode_numbers_do_not_tell_what_the_last_run_looked_up() async throws {
        let probe = "stat -c %i /usr/share/doc /usr/lib /etc/ssl /usr/share/zoneinfo/Asia /usr/share/zoneinfo/Europe"
        let first = try await live.run("bash", probe)
        XCTAssertEqual(first.status, .ok, "\(first)")
        // A few hundred directories (all of /usr/share can take longer than a run's limit on a busy machine).
        let walk = try await live.run("python3", "import os\nn = sum(1 for d in ('/usr/share/zoneinfo', '/usr/lib/python3') for _ in os.walk(d))\nos.stat('/usr/share/zoneinfo/Asia/.')\nprint(n > 100)",
                                      limits: RunLimits(wallMs: 20_000, cpuMs: 20_000))
        XCTAssertEqual(walk.stdout, "True\n", "\(walk)")
        let second = try await live.run("bash", probe)
        XCTAssertEqual(second.stdout, first.stdout, "the numbers moved with the last run's lookups")
        // They are the host's (the overlay tags their high bits with its layer).
        let host = try ["/usr/share/doc", "/usr/lib", "/etc/ssl", "/usr/share/zoneinfo/Asia", "/usr/share/zoneinfo/Europe"].map { path in
            try XCTUnwrap((try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? NSNumber)?.uint64Value)
        }
        let inside = second.stdout.split(separator: "\n").compactMap { UInt64($0) }
        XCTAssertEqual(inside.map { $0 & 0xffff_ffff }, host.map { $0 & 0xffff_ffff }, second.stdout)
    }
}
