import ArgumentParser
import CodesandClient
import Foundation

@main
struct Codesand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codesand",
        abstract: "Run code snippets in codesandd's sandboxes and ask it about itself.",
        discussion: """
            Exit status: a run exits with the snippet's own exit code (see `codesand run --help`); \
            2 when the daemon refused the request (a JSON-RPC error) or replied with something \
            unreadable; 3 when the daemon cannot be reached.
            """,
        subcommands: [RunCommand.self, LanguagesCommand.self, StatusCommand.self, MetricsCommand.self, PoolCommand.self,
                      BenchCommand.self, SoakCommand.self, ImageCommand.self]
    )
}

/// The option every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The daemon's socket (default: $CODESAND_SOCKET, else \(CodesandClient.defaultSocketPath)).",
        valueName: "path"))
    var socket: String?

    var socketPath: String {
        if let socket { return socket }
        if let env = ProcessInfo.processInfo.environment["CODESAND_SOCKET"], !env.isEmpty { return env }
        return CodesandClient.defaultSocketPath
    }

    /// Connects, runs `body`, closes. A client error becomes a message on stderr and exit 2 or 3.
    func withClient<T>(_ body: (CodesandClient) async throws(CodesandClientError) -> T) async throws -> T {
        let client: CodesandClient
        do {
            client = try await CodesandClient.connect(socketPath: socketPath)
        } catch {
            throw report(error)
        }
        do {
            let value = try await body(client)
            await client.close()
            return value
        } catch {
            await client.close()
            throw report(error)
        }
    }

    private func report(_ error: CodesandClientError) -> ExitCode {
        switch error {
        case .rpc(let rpc):
            printError("codesand: \(rpc.message) (code \(rpc.code))")
            return ExitCode(2)
        case .connectFailed:
            printError("codesand: \(error)")
            printError("codesand: check that codesandd is running, that the socket path is right "
                + "(--socket or CODESAND_SOCKET), and that you are in the socket's group (codesand)")
            return ExitCode(3)
        case .connectionClosed:
            printError("codesand: \(error)")
            return ExitCode(3)
        case .timeout, .protocolViolation, .encodingFailed, .cancelled:
            printError("codesand: \(error)")
            return ExitCode(2)
        }
    }
}

func printError(_ line: String) {
    writeOut(2, Data((line + "\n").utf8))
}

func printOut(_ line: String) {
    writeOut(1, Data((line + "\n").utf8))
}

/// Writes to fd 1 or 2. A reader that went away (`codesand … | head`) ends the program quietly,
/// as it would a C program, instead of a trap in FileHandle.
func writeOut(_ fd: Int32, _ data: Data) {
    data.withUnsafeBytes { raw in
        var off = 0
        while off < raw.count {
            let n = write(fd, raw.baseAddress! + off, raw.count - off)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { exit(errno == EPIPE ? 0 : 1) }
            off += n
        }
    }
}
