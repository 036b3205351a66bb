extension RunResult {
    /// How the run was stopped, for a person at a terminal (`codesand run` prints it after the
    /// output); nil for a program that ended by itself within its limits.
    public var endingNote: String? {
        switch status {
        case .ok, .error:
            // The program passed the output limit and ended by itself before the kill landed.
            return truncated ? "output limit reached, output truncated (the program had already ended)" : nil
        case .timeout: return "timed out after \(wallMs) ms (cpu \(cpuMs) ms)"
        case .oom: return "killed: out of memory (peak \(memoryPeakBytes) bytes)"
        case .outputLimit: return "killed: output limit reached, output truncated"
        case .signal: return "killed by \(signal ?? "a signal")"
        case .compileError:
            if compile?.timedOut == true { return "compile timed out" }
            if compile?.oomKilled == true { return "compile ran out of memory" }
            return "compile failed" + (compile?.exitCode.map { " (exit \($0))" } ?? "")
        }
    }
}
