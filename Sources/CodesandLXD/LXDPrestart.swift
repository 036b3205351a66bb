import CodesandCore
import CodesandProtocol
import Synchronization

/// A pre-started interpreter in a ready container (issue #15 item 5): the language's launcher — the
/// native backend's own (Sources/CodesandZygote/launchers) — exec'd as the sandbox user in its home
/// with the language's environment when the slot is prepared, its exec's websockets kept open. A
/// run of that language then costs a file push and a hand-over on the open stdin, not an exec
/// round trip and an interpreter start; the stage runner supervises the exec from there on.
///
/// The launchers wait on fd 3 for "path\0arg…" and read it to its end, but an LXD exec has only
/// fds 0, 1 and 2. So a small sh script gives the launcher its fd 3: a FIFO in /tmp that the
/// interpreter opens for reading, and a writer in the background that reads one line from stdin —
/// the hand-over, its NUL separators, newlines and backslashes as octal escapes that printf %b decodes — and
/// writes it into the FIFO. The rest of stdin is the program's. The script execs the interpreter,
/// so it is the exec's main process as in a plain run (same exit status, no extra parent); the
/// writer is double-forked (its parent, the container's init, reaps it) and exits after the
/// hand-over, and the FIFO is unlinked once both ends are open, before any program runs.
final class LXDPrestarted: Sendable {
    let language: String
    let session: LXDExecSession
    /// The exec's wait status, watched from its start (LXD forgets a finished operation after 5 s).
    let exit: Task<Int32, Never>
    private let ended: Ended

    /// Whether the launcher has exited (crashed, killed): it can no longer take a program.
    var hasExited: Bool { ended.flag.load(ordering: .acquiring) }

    /// Set by the exit watch, which starts before this object exists.
    private final class Ended: Sendable {
        let flag = Atomic<Bool>(false)
    }

    static let fifo = "/tmp/.codesand-prestart"

    /// `$1` the FIFO, then the interpreter's argv. `( … & )`: the writer's parent exits at once, so
    /// the interpreter has no child of ours. A background job's stdin is /dev/null: fd 7 carries the
    /// real one to it, and is closed for the interpreter. A launcher that is a file (node's main
    /// script, `{launcher_file}`) comes in the environment and goes to fd 5 as a file of its own,
    /// unlinked once open, as the native backend's init gives it (CS_FD_PRESTART_FILE).
    static let script = """
        f=$1; shift
        mkfifo -m 600 "$f" || exit 126
        exec 7<&0
        ( { exec 4>"$f" >/dev/null 2>&1; rm -f "$f"; IFS= read -r h <&7 && printf '%b' "$h" >&4; } & )
        if [ -n "${\(fileVariable)+x}" ]; then
          (umask 077 && printf '%s' "$\(fileVariable)" >"$f.file") && exec 5<"$f.file" && rm -f "$f.file" || exit 126
          unset \(fileVariable)
        fi
        exec "$@" 3<"$f" 7<&-
        """
    static let fileVariable = "CODESAND_LAUNCHER_FILE"

    private init(language: String, session: LXDExecSession, exit: Task<Int32, Never>, ended: Ended) {
        self.language = language
        self.session = session
        self.exit = exit
        self.ended = ended
    }

    /// Execs `spec`'s launcher (its `{launcher}` already resolved) in `container`. It waits there
    /// until a hand-over, the session's close or the container's restore.
    static func start(_ client: LXDClient, container: String, spec: PrestartSpec, uid: Int64, gid: Int64,
                      home: String) async throws -> LXDPrestarted {
        let command = LXDExecCommand(argv: ["/bin/sh", "-c", script, "sh", fifo] + spec.argv,
                                     env: spec.env + (spec.launcherFile.map { ["\(fileVariable)=\($0)"] } ?? []),
                                     uid: uid, gid: gid, cwd: home)
        let session = try await LXDExecSession.start(client, instance: container, command: command)
        let ended = Ended()
        let exit = Task { [operation = session.operation] in
            let status = await watch(client, operation)
            ended.flag.store(true, ordering: .releasing)
            return status
        }
        return LXDPrestarted(language: spec.language, session: session, exit: exit, ended: ended)
    }

    /// Waits for the exec to end, however long the launcher waits for its program; its wait status
    /// (SIGKILL's when LXD no longer knows the operation, or the watch was cancelled).
    private static func watch(_ client: LXDClient, _ operation: String) async -> Int32 {
        while !Task.isCancelled {
            guard let response = try? await client.call(.GET, LXDPath.sub(operation, "wait", query: "timeout=300"),
                                                        timeout: .seconds(310)) else { break }
            let result = LXDOperationResult(response.metadata)
            if result.statusCode == 103 { continue }  // still running when LXD's own wait timed out
            if case .int(let r) = result.metadata.objectValue?["return"] { return LXDExecSession.waitStatus(fromReturn: r) }
            break
        }
        return 9
    }

    /// What goes first on the launcher's stdin: its program's argv as one line.
    static func handOver(_ argv: [String]) throws -> [UInt8] {
        var line: [UInt8] = []
        for (i, arg) in argv.enumerated() {
            if i > 0 { line += Array("\\0000".utf8) }
            for byte in arg.utf8 {
                switch byte {
                case 0: throw SandboxError("an argv element contains a NUL character")
                case UInt8(ascii: "\n"): line += Array("\\0012".utf8)
                case UInt8(ascii: "\\"): line += Array("\\0134".utf8)
                default: line.append(byte)
                }
            }
        }
        line.append(UInt8(ascii: "\n"))
        return line
    }

    /// Lets the launcher go: closing the session makes LXD kill it (the restore that follows, or the
    /// caller's kill of the container's exec processes, takes the writer too).
    func discard() {
        session.close()
        exit.cancel()
    }
}
