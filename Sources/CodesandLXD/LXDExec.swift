import CodesandProtocol

/// What to run with the exec API: as whom, where, with which environment.
struct LXDExecCommand: Sendable {
    var argv: [String]
    /// The whole environment ("NAME=value" entries become LXD's `environment` map).
    var env: [String]
    var uid: Int64
    var gid: Int64
    var cwd: String

    /// The body of `POST /1.0/instances/NAME/exec`: the command waits for our websockets (stdin,
    /// stdout, stderr, control), so its output goes through them and through codesand's caps, never
    /// into LXD's unbounded `record-output` files.
    var requestBody: JSONValue { body(websockets: true) }

    /// The same command without websockets: stdin empty, its output dropped (for a kill that
    /// only its exit code tells about).
    var detachedRequestBody: JSONValue { body(websockets: false) }

    private func body(websockets: Bool) -> JSONValue {
        var environment: [String: JSONValue] = [:]
        for entry in env {
            guard let eq = entry.firstIndex(of: "=") else { continue }
            environment[String(entry[..<eq])] = .string(String(entry[entry.index(after: eq)...]))
        }
        return .object([
            "command": .array(argv.map { .string($0) }),
            "environment": .object(environment),
            "user": .int(uid), "group": .int(gid), "cwd": .string(cwd),
            "wait-for-websocket": .bool(websockets), "interactive": .bool(false), "record-output": .bool(false),
        ])
    }
}

/// An exec operation with its four websockets connected: the command runs from here on.
struct LXDExecSession: Sendable {
    let operation: String
    let stdin: LXDWebSocket
    let stdout: LXDWebSocket
    let stderr: LXDWebSocket
    let control: LXDWebSocket

    /// Starts the command: the exec request, then its websockets, all four at once (LXD fails the
    /// operation if 0, 1 and 2 are not connected within 5 s).
    static func start(_ client: LXDClient, instance: String, command: LXDExecCommand) async throws -> LXDExecSession {
        let response = try await client.call(.POST, LXDPath.exec(instance), json: command.requestBody)
        guard let operation = response.operation else {
            throw LXDError(what: "exec in \(instance)", message: "LXD answered without an operation")
        }
        let fds = response.metadata.objectValue?["metadata"]?.objectValue?["fds"]?.objectValue ?? [:]
        func secret(_ fd: String) throws -> String {
            guard let s = fds[fd]?.stringValue else {
                throw LXDError(what: "exec in \(instance)", message: "the operation names no websocket for fd \(fd)")
            }
            return s
        }
        let secrets = (try secret("0"), try secret("1"), try secret("2"), try secret("control"))
        async let s0 = LXDWebSocket.connect(client, operation: operation, secret: secrets.0)
        async let s1 = LXDWebSocket.connect(client, operation: operation, secret: secrets.1)
        async let s2 = LXDWebSocket.connect(client, operation: operation, secret: secrets.2)
        async let sc = LXDWebSocket.connect(client, operation: operation, secret: secrets.3)
        return LXDExecSession(operation: operation, stdin: try await s0, stdout: try await s1, stderr: try await s2,
                              control: try await sc)
    }

    /// Closes every websocket (closing control while the command runs makes LXD SIGKILL it).
    func close() {
        for ws in [stdin, stdout, stderr, control] { ws.channel.channel.close(promise: nil) }
    }
}

extension LXDExecSession {
    /// LXD's `return` as a wait status: 128+n is signal n (how LXD reports a command killed by a
    /// signal, like a shell does), anything else an exit code.
    static func waitStatus(fromReturn r: Int64) -> Int32 {
        if r > 128 && r <= 128 + 64 { return Int32(r - 128) }
        return Int32(truncatingIfNeeded: (r & 0xff) << 8)
    }
}
