@testable import CodesandCore
import XCTest

/// The `[rpc]` connection limits in the config.
final class RPCConfigTests: XCTestCase {
    func test_connection_limits_default_to_256_and_64_per_uid() throws {
        let c = try CodesandConfig.defaults()
        XCTAssertEqual(c.maxConnections, 256)
        XCTAssertEqual(c.maxConnectionsPerUID, 64)
    }

    func test_connection_limits_are_read_and_range_checked() throws {
        let c = try ConfigLoader.load(fileText: "[rpc]\nmax_connections = 1000\nmax_connections_per_uid = 10\n")
        XCTAssertEqual(c.maxConnections, 1000)
        XCTAssertEqual(c.maxConnectionsPerUID, 10)
        for bad in ["max_connections = 0", "max_connections_per_uid = 0", "max_connections = \"many\""] {
            XCTAssertThrowsError(try ConfigLoader.load(fileText: "[rpc]\n\(bad)\n"), bad) { error in
                XCTAssertTrue("\(error)".contains("rpc.max_connections"), "\(error)")
            }
        }
    }
}
