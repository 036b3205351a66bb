import CSandbox
import CodesandCore
import Glibc

/// The job as the sandbox's init reads it on the control pipe (csandbox.h, `struct cs_job_header`):
/// the header, the strings (compile argv, argv, environment, file name, each NUL-ended), then the
/// code. The init reads as the daemon writes, and starts the first stage once it has it all.
enum JobHandOver {
    /// `usesPrestart`: the interpreter waiting in the sandbox runs the program (SandboxRun decides).
    static func write(_ job: SandboxJob, to sandbox: SandboxInstance, usesPrestart: Bool,
                      rlimits: (fileSize: Int64, openFiles: Int64)) throws {
        let compileArgv = job.compile?.argv ?? []
        // The interpreter started in advance takes the program's path and args instead of an argv.
        let argv = usesPrestart ? job.prestart?.argv ?? job.argv : job.argv
        let all = compileArgv + argv + job.env + [job.fileName]
        if all.contains(where: { $0.utf8.contains(0) }) {
            throw SandboxError("an argv element, environment entry or file name contains a NUL character")
        }
        var strings: [UInt8] = []
        for s in all {
            strings.append(contentsOf: s.utf8)
            strings.append(0)
        }
        var header = cs_job_header()
        header.magic = CS_JOB_MAGIC
        header.compile_argc = UInt32(compileArgv.count)
        header.argc = UInt32(argv.count)
        header.flags = usesPrestart ? UInt32(CS_JOB_USE_PRESTART) : 0
        header.envc = UInt32(job.env.count)
        header.strings_len = UInt32(strings.count)
        header.code_len = UInt64(job.code.count)
        let cpuMs = max(job.limits.cpuMs, job.compile?.limits.cpuMs ?? 0)
        header.rlimit_cpu_s = UInt64((cpuMs + 999) / 1000 + 1)  // backstop; exact CPU time is the cgroup's
        header.rlimit_fsize = UInt64(rlimits.fileSize)
        header.rlimit_nofile = UInt64(rlimits.openFiles)
        header.backup_wall_s = UInt32((job.limits.wallMs + (job.compile?.limits.wallMs ?? 0)) / 1000 + 10)
        // One write: the init, woken by the first bytes, finds the whole job there.
        var bytes = withUnsafeBytes(of: &header) { Array($0) }
        bytes.reserveCapacity(bytes.count + strings.count + job.code.count)
        bytes.append(contentsOf: strings)
        bytes.append(contentsOf: job.code)
        sandbox.stageStarted()
        do {
            try bytes.withUnsafeBytes { try writeAll(sandbox.control, $0) }
        } catch {
            throw SandboxError("handing the job to the sandbox failed: \(error)")
        }
    }

    /// A job this large fits in the control pipe's buffer at once: writing it never waits for the
    /// init (so it may be written from a thread that must not block).
    /// (A pipe holds 64 KiB unless the host's pipe-user-pages limits shrank it: then the write
    /// waits a moment for the init, which is already reading.)
    static func fitsThePipe(_ job: SandboxJob) -> Bool {
        let strings = job.argv + (job.prestart?.argv ?? []) + job.env + (job.compile?.argv ?? []) + [job.fileName]
        return MemoryLayout<cs_job_header>.size + job.code.count + strings.reduce(0) { $0 + $1.utf8.count + 1 } < 32 * 1024
    }

    /// The word that starts the run stage after a compile (the init waits for it).
    static func startRun(_ sandbox: SandboxInstance) throws {
        var go = UInt8(CS_GO_RUN)
        sandbox.stageStarted()
        _ = try sys("write", "control pipe") { Glibc.write(sandbox.control, &go, 1) }
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < bytes.count {
            off += try sys("write", "control pipe") { Glibc.write(fd, bytes.baseAddress! + off, bytes.count - off) }
        }
    }
}
