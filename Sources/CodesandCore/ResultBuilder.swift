import CodesandProtocol

extension RunResult {
    /// Interprets a sandbox outcome: the run stage, and the compile stage if any. A failed compile
    /// is `compile_error` with the compiler's output in `compile`; the program did not run.
    public static func build(from o: SandboxOutcome) -> RunResult {
        let compile = o.compile.map { build(stage: $0) }
        guard let run = o.run else {
            let empty = OutputCollector(maxBytes: 0, maxLines: 0)
            return RunResult(status: .compileError, exitCode: nil, signal: nil, timedOut: false, oomKilled: false,
                             truncated: false, stdout: "", stderr: "", output: [], wallMs: 0, cpuMs: 0, memoryPeakBytes: 0,
                             compile: compile ?? build(stage: StageOutcome(waitStatus: nil, timedOut: false, oomKilled: false,
                                                                           output: empty, wallNs: 0, cpuNs: 0, memoryPeakBytes: 0)))
        }
        var result = build(stage: run)
        result.compile = compile
        if o.compileCached { result.compile?.cached = true }
        return result
    }

    /// One stage. Precedence: oom > timeout > output_limit > the program's own end.
    static func build(stage o: StageOutcome) -> RunResult {
        var exitCode: Int32? = nil
        var signal: String? = nil
        if let ws = o.waitStatus {
            let sig = ws & 0x7f
            if sig == 0 { exitCode = (ws >> 8) & 0xff } else { signal = signalName(sig) }
        } else {
            signal = "SIGKILL"  // it was killed with its sandbox
        }
        let status: RunStatus
        if o.oomKilled { status = .oom }
        else if o.timedOut { status = .timeout }
        else if o.output.truncated && exitCode == nil { status = .outputLimit }
        else if let code = exitCode { status = code == 0 ? .ok : .error }
        else { status = .signal }
        let (stdout, stderr, chunks) = o.output.texts()
        return RunResult(status: status, exitCode: exitCode, signal: signal, timedOut: o.timedOut, oomKilled: o.oomKilled,
                         truncated: o.output.truncated, stdout: stdout, stderr: stderr, output: chunks,
                         wallMs: Int64(o.wallNs / 1_000_000), cpuMs: Int64(o.cpuNs / 1_000_000),
                         memoryPeakBytes: o.memoryPeakBytes)
    }

    /// Linux signal names (x86_64 and arm64 numbering).
    public static func signalName(_ n: Int32) -> String {
        let names = [1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
                     8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM",
                     15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP",
                     21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM",
                     27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS"]
        if let name = names[Int(n)] { return name }
        return n >= 34 && n <= 64 ? "SIGRTMIN+\(n - 34)" : "SIG\(n)"
    }
}
