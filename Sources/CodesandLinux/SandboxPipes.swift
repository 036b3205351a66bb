import CSandbox
import CodesandCore
import CodesandProtocol
import Glibc

/// The daemon's ends of a running sandbox's pipes, without blocking. Every read says what it
/// found as a value (PipeRead); which pipes are still worth watching is the StageMachine's to say.
struct SandboxPipes {
    let sandbox: SandboxInstance
    private let stdinBytes: [UInt8]
    private var stdinOffset = 0
    private var buffer = [UInt8](repeating: 0, count: Self.readSize)
    static let readSize = 65536

    init(sandbox: SandboxInstance, stdin: [UInt8]) {
        self.sandbox = sandbox
        self.stdinBytes = stdin  // every end but the control pipe is non-blocking (SandboxInstance.spawn)
        if stdin.isEmpty { sandbox.closeStdin() }
    }

    /// The pipes open at the start: all of them, but stdin when there is nothing to write.
    var initiallyOpen: Set<StageMachine.Pipe> {
        Set(StageMachine.Pipe.allCases.filter { $0 != .cancel && ($0 != .stdin || sandbox.stdin >= 0) })
    }

    /// Waits up to `timeoutMs` for any of `pipes` (`.cancel`: `cancelFD`); returns the ready ones,
    /// in the order given.
    func wait(for pipes: [StageMachine.Pipe], timeoutMs: Int32, cancelFD: Int32) -> [StageMachine.Pipe] {
        var fds = pipes.map { pipe -> pollfd in
            switch pipe {
            case .stdout: return pollfd(fd: sandbox.stdout, events: Int16(POLLIN), revents: 0)
            case .stderr: return pollfd(fd: sandbox.stderr, events: Int16(POLLIN), revents: 0)
            case .status: return pollfd(fd: sandbox.status, events: Int16(POLLIN), revents: 0)
            case .report: return pollfd(fd: sandbox.report, events: Int16(POLLIN), revents: 0)
            case .stdin: return pollfd(fd: sandbox.stdin, events: Int16(POLLOUT), revents: 0)
            case .cancel: return pollfd(fd: cancelFD, events: Int16(POLLIN), revents: 0)
            }
        }
        guard poll(&fds, nfds_t(fds.count), timeoutMs) > 0 else { return [] }  // EINTR: a wake-up like a timeout
        return zip(pipes, fds).filter { $0.1.revents != 0 }.map(\.0)
    }

    /// Up to 64 KiB of a stream's output.
    mutating func readOutput(_ stream: OutputStream) -> PipeRead<[UInt8]> {
        let fd = stream == .stdout ? sandbox.stdout : sandbox.stderr
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { return .value(Array(buffer[0..<n])) }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                if e == EAGAIN { return .wouldBlock }
            }
            return .end
        }
    }

    /// The stage status record the init writes when the stage's main process has ended.
    func readStatus() -> PipeRead<cs_stage_status> { readRecord(cs_stage_status.self, from: sandbox.status) }

    func readReport() -> PipeRead<cs_report> { sandbox.readReport() }

    /// Writes what the pipe takes of the rest of stdin. False once stdin is closed: all of it
    /// written, or the program closed its end (EPIPE); either way it reads EOF from then on.
    mutating func pumpStdin() -> Bool {
        guard sandbox.stdin >= 0 else { return false }
        var failed = false
        while stdinOffset < stdinBytes.count {
            let n = stdinBytes.withUnsafeBytes { raw in write(sandbox.stdin, raw.baseAddress! + stdinOffset, raw.count - stdinOffset) }
            if n > 0 { stdinOffset += n; continue }
            let e = errno
            if n < 0 && e == EINTR { continue }
            failed = !(n < 0 && e == EAGAIN)
            break
        }
        if stdinOffset >= stdinBytes.count || failed { sandbox.closeStdin() }
        return sandbox.stdin >= 0
    }
}

/// What one non-blocking read of a pipe found, as a value: whether there is more to come is never
/// left to an `errno` read after the fact (a stale EAGAIN there once kept a pipe at its end in
/// every poll, and the supervisor spinning).
enum PipeRead<Value> {
    case value(Value)
    /// Nothing now; the writer is still there.
    case wouldBlock
    /// EOF, or a read error: nothing more will come.
    case end
}

/// Reads one fixed-size record that the sandbox's init writes whole (records are far below
/// PIPE_BUF, so a write is atomic): a part of one means its writer died, which is the end.
func readRecord<Record>(_ type: Record.Type, from fd: Int32) -> PipeRead<Record> {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<Record>.size, alignment: MemoryLayout<Record>.alignment)
    defer { raw.deallocate() }
    while true {
        let n = read(fd, raw, MemoryLayout<Record>.size)
        if n == MemoryLayout<Record>.size { return .value(raw.load(as: Record.self)) }
        if n < 0 {
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN { return .wouldBlock }
        }
        return .end
    }
}
