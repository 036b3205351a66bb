import CodesandClient
import CodesandProtocol

/// Runs a snippet for the bot. The real one is ``CodesandRunner``; a test can stand in its own.
public protocol SnippetRunner: Sendable {
    func run(_ params: RunParams, timeout: Duration) async throws(CodesandClientError) -> RunResult
}

/// Runs snippets through codesandd. It connects on first use, so the bot can join IRC while the
/// daemon is still starting; after that the client reconnects by itself when the daemon restarts.
public actor CodesandRunner: SnippetRunner {
    public let socketPath: String
    private var client: CodesandClient?

    public init(socketPath: String = CodesandClient.defaultSocketPath) {
        self.socketPath = socketPath
    }

    public func run(_ params: RunParams, timeout: Duration) async throws(CodesandClientError) -> RunResult {
        let client: CodesandClient
        if let existing = self.client {
            client = existing
        } else {
            let fresh = try await CodesandClient.connect(socketPath: socketPath)
            if let raced = self.client {  // another call connected while this one waited
                await fresh.close()
                client = raced
            } else {
                self.client = fresh
                client = fresh
            }
        }
        return try await client.run(params, timeout: timeout)
    }

    public func close() async {
        await client?.close()
        client = nil
    }
}
