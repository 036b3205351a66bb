import CodesandClient
import CodesandProtocol
import XCTest

/// The typed methods besides `run`: the request each sends and how its reply decodes.
final class ClientMethodTests: XCTestCase {
    func test_reload_pool_sends_pool_reload_and_decodes_its_result() async throws {
        let fake = try ScriptedDaemon([.line(#"{"jsonrpc":"2.0","id":$ID,"result":{"languages":[{"name":"python3","version":"3.11.2"}],"needs_restart":["pool.size"],"rootfs":"image"}}"#)])
        defer { fake.stop() }
        let client = try await CodesandClient.connect(socketPath: fake.path)
        let answer = try await client.reloadPool()
        XCTAssertEqual(answer, ReloadResult(rootfs: "image", languages: [.init(name: "python3", version: "3.11.2")],
                                            needsRestart: ["pool.size"]))
        XCTAssertTrue(fake.requests.first?.contains(#""method":"pool.reload""#) == true, "\(fake.requests)")
        await client.close()
    }

    func test_a_refused_reload_is_the_daemons_error() async throws {
        let fake = try ScriptedDaemon([.line(#"{"jsonrpc":"2.0","id":$ID,"error":{"code":-32602,"message":"configuration not reloaded, the old one stays: no image"}}"#)])
        defer { fake.stop() }
        let client = try await CodesandClient.connect(socketPath: fake.path)
        do {
            _ = try await client.reloadPool()
            XCTFail("no error")
        } catch {
            XCTAssertEqual(error.rpcCode, .invalidParams)
        }
        await client.close()
    }
}
