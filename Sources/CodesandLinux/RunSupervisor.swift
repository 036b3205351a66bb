import CSandbox
import CodesandCore
import CodesandProtocol
import Glibc

/// Runs one job in a ready sandbox on the calling (dedicated) thread: hands the job over, pumps
/// stdin, drains stdout and stderr, enforces the wall, CPU and output limits, and kills the whole
/// sandbox when the main process exits or a limit is hit.
struct RunSupervisor {
    let sandbox: SandboxInstance
    let job: SandboxJob
    let rlimits: (fileSize: Int64, openFiles: Int64)
    /// Becomes readable when the request is cancelled (client gone, daemon stopping).
    let cancelFD: Int32

    func run() throws -> SandboxOutcome {
        let oomBefore = sandbox.cgroup.oomKills()
        let cpuBefore = sandbox.cgroup.cpuNs()  // the init's setup is not the run's
        func cpuUsed() -> UInt64 { sandbox.cgroup.cpuNs() &- cpuBefore }
        try handOver()
        let start = monotonicNs()
        let deadline = start + UInt64(job.limits.wallMs) * 1_000_000
        let cpuLimitNs = UInt64(job.limits.cpuMs) * 1_000_000

        var output = OutputCollector(maxBytes: Int(job.limits.outputBytes), maxLines: Int(job.limits.outputLines))
        var stdinOffset = 0
        var waitStatus: Int32? = nil
        var statusDone = false, outDone = false, errDone = false, reportDone = false
        var execError: Int32? = nil
        var timedOut = false, killed = false
        var endNs: UInt64? = nil
        var killDeadline: UInt64? = nil
        var lastCPUCheck = start
        var buffer = [UInt8](repeating: 0, count: 65536)
        for fd in [sandbox.stdout, sandbox.stderr, sandbox.status, sandbox.report, sandbox.stdin] { setNonblocking(fd) }
        if job.stdin.isEmpty { sandbox.closeStdin() }

        func killSandbox() {
            guard !killed else { return }
            killed = true
            sandbox.cgroup.killAll(timeoutMs: 0)  // starts the kill; EOF on the pipes tells when it is done
            kill(sandbox.initPID, SIGKILL)
            killDeadline = monotonicNs() + 3_000_000_000
        }

        while !(statusDone && outDone && errDone) {
            let now = monotonicNs()
            if !killed && now >= deadline { timedOut = true; killSandbox() }
            if let kd = killDeadline, now >= kd { break }  // nothing left that could still write: stop waiting
            var fds: [pollfd] = []
            func watch(_ fd: Int32, _ events: Int32, _ done: Bool) {
                fds.append(pollfd(fd: done ? -1 : fd, events: Int16(events), revents: 0))
            }
            watch(sandbox.stdout, POLLIN, outDone)
            watch(sandbox.stderr, POLLIN, errDone)
            watch(sandbox.status, POLLIN, statusDone)
            watch(sandbox.report, POLLIN, reportDone)
            watch(sandbox.stdin, POLLOUT, sandbox.stdin < 0)
            watch(cancelFD, POLLIN, killed)
            // Wake at the deadline, and every 50 ms to check the CPU time.
            let untilDeadline = killed ? 50 : Int32(min(50, (deadline - min(now, deadline)) / 1_000_000 + 1))
            _ = poll(&fds, nfds_t(fds.count), untilDeadline)

            if fds[0].revents != 0 { outDone = drain(sandbox.stdout, .stdout, &output, &buffer) }
            if fds[1].revents != 0 { errDone = drain(sandbox.stderr, .stderr, &output, &buffer) }
            if output.truncated && !killed { killSandbox() }
            if fds[2].revents != 0 {
                var st: Int32 = 0
                let n = read(sandbox.status, &st, 4)
                if n == 4 { waitStatus = st }
                if n == 4 || n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) {
                    statusDone = true
                    endNs = endNs ?? monotonicNs()
                    // The main process is gone: whatever it left behind dies now, not at the deadline.
                    if !killed && n == 4 {
                        kill(sandbox.initPID, SIGKILL)
                        killDeadline = monotonicNs() + 3_000_000_000
                    }
                }
            }
            if fds[3].revents != 0 {
                if let record = sandbox.readReport() {
                    if record.kind == Int32(CS_REPORT_EXEC_FAILED.rawValue) || record.kind == Int32(CS_REPORT_SETUP_FAILED.rawValue) {
                        execError = record.err
                    }
                } else if errno != EAGAIN {
                    reportDone = true
                }
            }
            if fds[4].revents != 0 { pumpStdin(&stdinOffset) }
            if fds[5].revents != 0 { killSandbox() }
            if !killed && monotonicNs() >= lastCPUCheck + 50_000_000 {
                lastCPUCheck = monotonicNs()
                if cpuUsed() >= cpuLimitNs { timedOut = true; killSandbox() }
            }
        }
        let finished = endNs ?? monotonicNs()
        if let execError {
            sandbox.destroy()
            throw SandboxError("cannot start \(job.argv.first ?? "the program")", errno: execError)
        }
        // The sandbox is left dying (its init killed): the caller destroys it off the reply's path.
        let cpu = cpuUsed()
        if waitStatus.map({ $0 & 0x7f == SIGXCPU }) == true || cpu >= cpuLimitNs { timedOut = true }
        return SandboxOutcome(waitStatus: waitStatus, timedOut: timedOut, oomKilled: sandbox.cgroup.oomKills() > oomBefore,
                              output: output, wallNs: finished - start, cpuNs: cpu,
                              memoryPeakBytes: sandbox.cgroup.memoryPeak())
    }

    /// Writes the job (header, strings, code) on the control pipe; the init reads it as we write.
    func handOver() throws {
        var strings: [UInt8] = []
        for s in job.argv + job.env + [job.fileName] {
            strings.append(contentsOf: s.utf8)
            strings.append(0)
        }
        var header = cs_job_header()
        header.magic = CS_JOB_MAGIC
        header.argc = UInt32(job.argv.count)
        header.envc = UInt32(job.env.count)
        header.strings_len = UInt32(strings.count)
        header.code_len = UInt64(job.code.count)
        header.rlimit_cpu_s = UInt64((job.limits.cpuMs + 999) / 1000 + 1)  // backstop; exact CPU time is the cgroup's
        header.rlimit_fsize = UInt64(rlimits.fileSize)
        header.rlimit_nofile = UInt64(rlimits.openFiles)
        header.backup_wall_s = UInt32(job.limits.wallMs / 1000 + 10)
        do {
            try withUnsafeBytes(of: &header) { try writeAll(sandbox.control, $0) }
            try strings.withUnsafeBytes { try writeAll(sandbox.control, $0) }
            try job.code.withUnsafeBytes { try writeAll(sandbox.control, $0) }
        } catch {
            sandbox.destroy()
            throw SandboxError("handing the job to the sandbox failed: \(error)")
        }
        sandbox.closeControl()
    }

    private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < bytes.count {
            off += try sys("write", "control pipe") { write(fd, bytes.baseAddress! + off, bytes.count - off) }
        }
    }

    private func pumpStdin(_ offset: inout Int) {
        let n = job.stdin.withUnsafeBytes { raw in write(sandbox.stdin, raw.baseAddress! + offset, raw.count - offset) }
        if n > 0 { offset += n }
        // Done, or the program closed its stdin (EPIPE): either way it gets EOF from now on.
        if offset >= job.stdin.count || (n < 0 && errno != EAGAIN && errno != EINTR) { sandbox.closeStdin() }
    }

    /// Reads what is available; returns true at EOF.
    private func drain(_ fd: Int32, _ stream: OutputStream, _ output: inout OutputCollector, _ buffer: inout [UInt8]) -> Bool {
        for _ in 0..<16 {  // bounded, so an endless flood still lets the loop check its deadlines
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                buffer.withUnsafeBytes { _ = output.append(UnsafeRawBufferPointer(rebasing: $0[0..<n]), from: stream) }
                if n < buffer.count { return false }
                continue
            }
            if n == 0 { return true }
            if errno == EINTR { continue }
            return errno != EAGAIN
        }
        return false
    }

    private func setNonblocking(_ fd: Int32) {
        guard fd >= 0 else { return }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }
}
