import CSandbox
import CodesandCore
import CodesandProtocol
import Glibc

/// Runs one job in a ready sandbox on the calling (dedicated) thread: hands the job over, then
/// supervises each stage (compile, if any, then run): drains stdout and stderr, enforces the wall,
/// CPU and output limits, and kills the whole sandbox when a limit is hit or the main process of
/// the run stage exits. Tearing the sandbox down is the caller's job.
struct RunSupervisor {
    let sandbox: SandboxInstance
    let job: SandboxJob
    let rlimits: (fileSize: Int64, openFiles: Int64)
    /// Becomes readable when the request is cancelled (client gone, daemon stopping).
    let cancelFD: Int32
    /// For `stream` runs: the run stage's output as it arrives.
    var streamer: OutputStreamer? = nil
    /// TCP bytes the sandbox may queue in all (see SocketQueues): past it, the stage ends as out of memory.
    var socketLimitBytes: Int64 = .max

    var usesPrestart: Bool { job.prestart != nil && job.prestart?.language == sandbox.prestarted }

    func run() throws -> SandboxOutcome {
        try handOver()
        var pipes = SandboxPipes(sandbox: sandbox, stdin: job.stdin)
        var outcome = SandboxOutcome(compile: nil, run: nil)
        outcome.prestarted = usesPrestart
        var memoryBefore: Int64 = 0
        if let compile = job.compile {
            let stage = supervise(stage: 0, limits: compile.limits, pipes: &pipes)
            outcome.compile = stage
            if let e = pipes.execError { throw execFailure(compile.argv, e) }
            guard stage.succeeded else { return outcome }  // the init ends the sandbox after a failed compile
            do {
                // What the compiler left (page cache, object files) is not the run's: reclaimed,
                // and the rest (files in the tmpfs) counted out of its peak. Read before the
                // word, which starts the program.
                sandbox.cgroup.reclaim()
                do {
                    try sandbox.beginRun(limits: job.limits)
                } catch let e as SystemCallError where e.errno == EBUSY {
                    // What the compile left (the tmpfs files, unreclaimable without swap) is more
                    // than the program's memory limit: it cannot start under it. A result, not an error.
                    let held = sandbox.cgroup.memoryUsage()
                    sandbox.destroy()
                    outcome.run = StageOutcome(waitStatus: nil, timedOut: false, oomKilled: true,
                                               output: OutputCollector(maxBytes: 0, maxLines: 0), wallNs: 0, cpuNs: 0,
                                               memoryPeakBytes: held)
                    return outcome
                }
                memoryBefore = sandbox.cgroup.memoryUsage()
                var go = UInt8(CS_GO_RUN)
                _ = try sys("write", "control pipe") { write(sandbox.control, &go, 1) }
            } catch {
                sandbox.destroy()  // its init would otherwise wait for the word in the slot's cgroup
                throw SandboxError("starting the run after the compile failed: \(error)")
            }
        }
        sandbox.closeControl()
        outcome.run = supervise(stage: 1, limits: job.limits, pipes: &pipes, memoryBefore: memoryBefore)
        streamer?.finish()
        if let e = pipes.execError { throw execFailure(job.argv, e) }
        return outcome
    }

    private func execFailure(_ argv: [String], _ e: Int32) -> SandboxError {
        sandbox.destroy()
        return SandboxError("cannot start \(argv.first ?? "the program")", errno: e)
    }

    /// One stage, until its main process's status arrives (and, for the run stage, until the output
    /// ends: the init's exit kills whatever still holds the pipes).
    private func supervise(stage: Int32, limits: LimitSet, pipes: inout SandboxPipes, memoryBefore: Int64 = 0) -> StageOutcome {
        let oomBefore = sandbox.cgroup.oomKills()
        let cpuBefore = sandbox.cgroup.cpuNs()  // the init's setup (or the compile) is not this stage's
        func cpuUsed() -> UInt64 { sandbox.cgroup.cpuNs() &- cpuBefore }
        let start = monotonicNs()
        let deadline = start + UInt64(limits.wallMs) * 1_000_000
        let cpuLimitNs = UInt64(limits.cpuMs) * 1_000_000
        var output = OutputCollector(maxBytes: Int(limits.outputBytes), maxLines: Int(limits.outputLines))
        var waitStatus: Int32? = nil
        var statusSeen = false, timedOut = false, killed = false, socketsOverLimit = false
        var endNs: UInt64? = nil, killDeadline: UInt64? = nil
        var lastCPUCheck = start

        func killSandbox() {
            guard !killed else { return }
            killed = true
            sandbox.cgroup.killAll(timeoutMs: 0)  // starts the kill; EOF on the pipes tells when it is done
            kill(sandbox.initPID, SIGKILL)
            killDeadline = monotonicNs() + 3_000_000_000
        }

        while true {
            // Done: the compile stage at its status; the run stage when its output ended too.
            if statusSeen && (stage == 0 || pipes.outputDone) { break }
            if pipes.statusEOF && pipes.outputDone { break }
            let now = monotonicNs()
            if !killed && now >= deadline { timedOut = true; killSandbox() }
            if let kd = killDeadline, now >= kd { break }  // nothing left that could still write: stop waiting
            let untilDeadline = killed ? 50 : Int32(min(50, (deadline - min(now, deadline)) / 1_000_000 + 1))
            let ready = pipes.wait(timeoutMs: untilDeadline, cancelFD: killed ? -1 : cancelFD, feedStdin: stage == 1)
            if ready.stdout || ready.stderr { pipes.drain(into: &output, streamer: stage == 1 ? streamer : nil) }
            if output.truncated && !killed { killSandbox() }
            if ready.status, !statusSeen, let record = pipes.readStatus() {
                statusSeen = true
                waitStatus = record.wait_status
                endNs = monotonicNs()
                if stage == 0 {
                    // The compiler has exited: all it wrote is in the pipes now. Take it, up to EAGAIN.
                    pipes.drain(into: &output)
                    pipes.drain(into: &output)
                } else if !killed {
                    // The program is gone: whatever it left behind dies now, not at the deadline.
                    kill(sandbox.initPID, SIGKILL)
                    killDeadline = monotonicNs() + 3_000_000_000
                }
            } else if ready.status && statusSeen {
                _ = pipes.readStatus()  // EOF after the record
            }
            if ready.report { pipes.readReport() }
            if ready.stdin && stage == 1 { pipes.pumpStdin() }
            if ready.cancel { killSandbox() }
            if !killed && monotonicNs() >= lastCPUCheck + 50_000_000 {
                lastCPUCheck = monotonicNs()
                if cpuUsed() >= cpuLimitNs {
                    timedOut = true
                    killSandbox()
                } else if SocketQueues.estimatedBytes(ofNetnsOf: sandbox.initPID) > min(socketLimitBytes, limits.memoryBytes) {
                    socketsOverLimit = true
                    killSandbox()
                }
            }
        }
        let cpu = cpuUsed()
        // Time limits are the supervisor's clocks and the cgroup's CPU usage, never the program's
        // signals: a SIGXCPU it sends itself is a signal (RLIMIT_CPU, the backstop, is set past
        // the cgroup's limit, which is hit first).
        if cpu >= cpuLimitNs { timedOut = true }
        return StageOutcome(waitStatus: waitStatus, timedOut: timedOut, oomKilled: socketsOverLimit || sandbox.cgroup.oomKills() > oomBefore,
                            output: output, wallNs: (endNs ?? monotonicNs()) - start, cpuNs: cpu,
                            memoryPeakBytes: max(0, sandbox.cgroup.memoryPeak() - memoryBefore))
    }

    /// Writes the job (header, strings, code) on the control pipe; the init reads it as we write.
    func handOver() throws {
        let compileArgv = job.compile?.argv ?? []
        // The interpreter started in advance for this language takes the program's argv instead.
        let usePrestart = usesPrestart
        let argv = usePrestart ? job.prestart!.argv : job.argv
        var strings: [UInt8] = []
        let all = compileArgv + argv + job.env + [job.fileName]
        if all.contains(where: { $0.utf8.contains(0) }) {
            sandbox.destroy()
            throw SandboxError("an argv element, environment entry or file name contains a NUL character")
        }
        for s in all {
            strings.append(contentsOf: s.utf8)
            strings.append(0)
        }
        var header = cs_job_header()
        header.magic = CS_JOB_MAGIC
        header.compile_argc = UInt32(compileArgv.count)
        header.argc = UInt32(argv.count)
        header.flags = usePrestart ? UInt32(CS_JOB_USE_PRESTART) : 0
        header.envc = UInt32(job.env.count)
        header.strings_len = UInt32(strings.count)
        header.code_len = UInt64(job.code.count)
        let cpuMs = max(job.limits.cpuMs, job.compile?.limits.cpuMs ?? 0)
        header.rlimit_cpu_s = UInt64((cpuMs + 999) / 1000 + 1)  // backstop; exact CPU time is the cgroup's
        header.rlimit_fsize = UInt64(rlimits.fileSize)
        header.rlimit_nofile = UInt64(rlimits.openFiles)
        header.backup_wall_s = UInt32((job.limits.wallMs + (job.compile?.limits.wallMs ?? 0)) / 1000 + 10)
        do {
            try withUnsafeBytes(of: &header) { try writeAll(sandbox.control, $0) }
            try strings.withUnsafeBytes { try writeAll(sandbox.control, $0) }
            try job.code.withUnsafeBytes { try writeAll(sandbox.control, $0) }
        } catch {
            sandbox.destroy()
            throw SandboxError("handing the job to the sandbox failed: \(error)")
        }
        if job.compile == nil { sandbox.closeControl() }
    }

    private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < bytes.count {
            off += try sys("write", "control pipe") { write(fd, bytes.baseAddress! + off, bytes.count - off) }
        }
    }
}
