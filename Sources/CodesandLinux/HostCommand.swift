import CSandbox
import CodesandSpawn
import Glibc

/// Runs a trusted host program from the config (e.g. `python3 --version`) with argv, no shell,
/// and returns its stdout and stderr together, or nil if it cannot be started or fails.
public enum HostCommand {
    /// Keeps the first `maxBytes` of the output. The rest is read and dropped: a program that is
    /// not read from blocks on a full pipe and never exits, and the daemon would wait for it forever.
    public static func output(_ argv: [String], maxBytes: Int = 65536) -> String? {
        guard let path = argv.first, access(path, X_OK) == 0 else { return nil }
        var pipe: [Int32] = [0, 0]
        // O_CLOEXEC: a sandbox or probe spawned by another thread meanwhile must not inherit the
        // write end, or our read would wait for that other program's end to see EOF.
        guard cs_pipe_cloexec(&pipe) == 0 else { return nil }
        // Nothing else of the daemon's: fds opened without O_CLOEXEC (the listening socket systemd
        // passes as fd 3) would otherwise stay open in the probe and whatever it starts.
        var spawn = Spawn(argv)
        spawn.stdout = .fd(pipe[1])
        spawn.stderr = .fd(pipe[1])
        let started = try? spawn.start()
        close(pipe[1])
        defer { close(pipe[0]) }
        guard let pid = started else { return nil }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { read(pipe[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<min(n, max(0, maxBytes - out.count))])
        }
        guard Spawn.waitStatus(pid) == 0 else { return nil }
        return String(decoding: out, as: UTF8.self)
    }
}
