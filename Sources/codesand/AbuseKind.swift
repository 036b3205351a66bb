import CodesandProtocol

/// Snippets that attack the sandbox's limits, for `bench --abuse` and `soak`: each says what it
/// sends and how its run must end for the limit to have held.
enum AbuseKind: Int, CaseIterable, Sendable {
    case forkBomb, sleep, memoryBomb, outputFlood, endlessOutput, setsidDaemon, bigFile, cpuSpin

    /// `bench --abuse`: the mix its published numbers were measured with.
    static let benchMix: [AbuseKind] = [.forkBomb, .sleep, .memoryBomb, .outputFlood]
    /// `soak`: every kind but the single 10 MB write (endless output floods harder).
    static let soakMix: [AbuseKind] = [.forkBomb, .memoryBomb, .endlessOutput, .sleep, .setsidDaemon, .bigFile, .cpuSpin]

    /// What `soak` finds on the host afterwards if a background daemon escaped its sandbox.
    static let daemonMarker = "codesand-soak-daemon"

    var name: String {
        ["fork-bomb", "sleep", "memory-bomb", "output-flood", "endless-output", "setsid-daemon", "big-file", "cpu-spin"][rawValue]
    }

    var params: RunParams {
        let (language, code, limits): (String, String, RunLimits?) = switch self {
        // Every process forks until the pids limit refuses; the first one then says so and exits,
        // and its sandbox's end kills the rest.
        case .forkBomb: ("python3", """
            import os
            child = False
            while True:
                try:
                    if os.fork() == 0:
                        child = True
                except BlockingIOError:
                    break
            if child:
                os._exit(0)
            print("fork refused at the pids limit")
            """, nil)
        case .sleep: ("python3", "import time; time.sleep(3600)", RunLimits(wallMs: 1000))
        case .memoryBomb: ("python3", "x = bytearray(1<<30)", RunLimits(memoryBytes: 64 << 20))
        case .outputFlood: ("python3", "print('x'*10_000_000)", nil)
        case .endlessOutput: ("bash", "yes", nil)
        case .setsidDaemon: ("bash", "setsid sh -c 'exec -a \(Self.daemonMarker) sleep 600' </dev/null >/dev/null 2>&1 & echo started", nil)
        case .bigFile: ("bash", "head -c 200M /dev/zero > /tmp/big", nil)  // past RLIMIT_FSIZE and the 64 MiB tmpfs
        case .cpuSpin: ("python3", "while True: pass", RunLimits(wallMs: 5000, cpuMs: 500))
        }
        return RunParams(language: language, code: code, limits: limits, requester: "codesand-abuse")
    }

    /// The statuses that show the limit held, and what it must print where that is fixed.
    var expected: (statuses: Set<RunStatus>, stdout: String?) {
        switch self {
        case .forkBomb: ([.ok], "fork refused at the pids limit\n")
        case .sleep, .cpuSpin: ([.timeout], nil)
        case .memoryBomb: ([.oom, .error], nil)  // error: a MemoryError, on a host that refuses the allocation itself
        case .outputFlood, .endlessOutput: ([.outputLimit], nil)
        case .setsidDaemon: ([.ok], "started\n")  // and nothing of it left afterwards (soak looks)
        case .bigFile: ([.error], nil)  // SIGXFSZ kills head; the shell exits non-zero
        }
    }

    /// What is wrong with how `result` ended, or nil if the limit held.
    func problem(with result: RunResult) -> String? {
        let (statuses, stdout) = expected
        if !statuses.contains(result.status) {
            return "ended \(result.ending) after \(result.wallMs) ms: not what its limit should give"
        }
        if let stdout, result.stdout != stdout {
            return "printed \(BenchReport.quoted(result.stdout)), expected \(BenchReport.quoted(stdout))"
        }
        return nil
    }

    /// Abusive runs are spread evenly: `percent` of every 100 consecutive indices, `kinds` in turn.
    static func forRun(_ index: Int, percent: Int, kinds: [AbuseKind]) -> AbuseKind? {
        let before = index * percent / 100
        guard (index + 1) * percent / 100 > before else { return nil }
        return kinds[before % kinds.count]
    }
}

extension RunResult {
    /// "ok", "error (exit 1)", "signal (SIGKILL)", "timeout (SIGKILL)"…
    var ending: String {
        let how = signal ?? exitCode.map { "exit \($0)" } ?? "?"
        return status == .ok ? "ok" : "\(status.rawValue) (\(how))"
    }
}
