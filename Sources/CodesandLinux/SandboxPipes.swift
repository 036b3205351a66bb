import CSandbox
import CodesandCore
import CodesandProtocol
import Glibc

/// The daemon's ends of a running sandbox's pipes, read without blocking: output into a collector,
/// stage status records, the report pipe, and the request's stdin pumped in as the program reads it.
struct SandboxPipes {
    let sandbox: SandboxInstance
    let stdinBytes: [UInt8]
    private var stdinOffset = 0
    private var buffer = [UInt8](repeating: 0, count: 65536)
    private(set) var stdoutEOF = false
    private(set) var stderrEOF = false
    private(set) var statusEOF = false
    private(set) var reportEOF = false
    /// errno of a failed exec (or late setup failure) reported by the init.
    private(set) var execError: Int32?

    init(sandbox: SandboxInstance, stdin: [UInt8]) {
        self.sandbox = sandbox
        self.stdinBytes = stdin
        for fd in [sandbox.stdout, sandbox.stderr, sandbox.status, sandbox.report, sandbox.stdin] where fd >= 0 {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        if stdin.isEmpty { sandbox.closeStdin() }
    }

    var outputDone: Bool { stdoutEOF && stderrEOF }

    /// Waits up to `timeoutMs` for any pipe (or `cancelFD`); returns true if cancelFD fired.
    /// `feedStdin` false (a compile stage): the stdin pipe is not watched, or poll would return at once.
    mutating func wait(timeoutMs: Int32, cancelFD: Int32, feedStdin: Bool) -> (stdout: Bool, stderr: Bool, status: Bool,
                                                                               report: Bool, stdin: Bool, cancel: Bool) {
        var fds = [
            pollfd(fd: stdoutEOF ? -1 : sandbox.stdout, events: Int16(POLLIN), revents: 0),
            pollfd(fd: stderrEOF ? -1 : sandbox.stderr, events: Int16(POLLIN), revents: 0),
            pollfd(fd: statusEOF ? -1 : sandbox.status, events: Int16(POLLIN), revents: 0),
            pollfd(fd: reportEOF ? -1 : sandbox.report, events: Int16(POLLIN), revents: 0),
            pollfd(fd: feedStdin ? sandbox.stdin : -1, events: Int16(POLLOUT), revents: 0),
            pollfd(fd: cancelFD, events: Int16(POLLIN), revents: 0),
        ]
        _ = poll(&fds, nfds_t(fds.count), timeoutMs)
        return (fds[0].revents != 0, fds[1].revents != 0, fds[2].revents != 0, fds[3].revents != 0,
                fds[4].revents != 0, fds[5].revents != 0)
    }

    /// Reads what is available from both streams into `output` (bounded, so a flood still lets the
    /// caller check its deadlines). What is kept also goes to `streamer`, for `stream` runs.
    mutating func drain(into output: inout OutputCollector, streamer: OutputStreamer? = nil) {
        if !stdoutEOF { stdoutEOF = drain(sandbox.stdout, .stdout, &output, streamer) }
        if !stderrEOF { stderrEOF = drain(sandbox.stderr, .stderr, &output, streamer) }
    }

    private mutating func drain(_ fd: Int32, _ stream: OutputStream, _ output: inout OutputCollector,
                                _ streamer: OutputStreamer?) -> Bool {
        for _ in 0..<16 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                let keptBefore = output.keptBytes
                buffer.withUnsafeBytes { _ = output.append(UnsafeRawBufferPointer(rebasing: $0[0..<n]), from: stream) }
                if let streamer, output.keptBytes > keptBefore {
                    buffer.withUnsafeBytes { streamer.feed(UnsafeRawBufferPointer(rebasing: $0[0..<(output.keptBytes - keptBefore)]), from: stream) }
                }
                if n < buffer.count { return false }
                continue
            }
            if n == 0 { return true }
            if errno == EINTR { continue }
            return errno != EAGAIN
        }
        return false
    }

    /// The next stage status record, if one is there. Sets statusEOF at the end of the pipe.
    mutating func readStatus() -> cs_stage_status? {
        switch readRecord(cs_stage_status.self, from: sandbox.status) {
        case .value(let record): return record
        case .wouldBlock: return nil
        case .end:
            statusEOF = true
            return nil
        }
    }

    mutating func readReport() {
        while true {
            switch sandbox.readReport() {
            case .value(let record):
                if record.kind == Int32(CS_REPORT_EXEC_FAILED.rawValue) || record.kind == Int32(CS_REPORT_SETUP_FAILED.rawValue) {
                    execError = record.err
                }
            case .wouldBlock:
                return
            case .end:
                reportEOF = true  // never polled again: a pipe at its end is always "ready"
                return
            }
        }
    }

    mutating func pumpStdin() {
        let n = stdinBytes.withUnsafeBytes { raw in write(sandbox.stdin, raw.baseAddress! + stdinOffset, raw.count - stdinOffset) }
        if n > 0 { stdinOffset += n }
        // Done, or the program closed its stdin (EPIPE): either way it gets EOF from now on.
        if stdinOffset >= stdinBytes.count || (n < 0 && errno != EAGAIN && errno != EINTR) { sandbox.closeStdin() }
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
