import Glibc

/// TCP memory of a sandbox that no cgroup holds. The kernel charges a TCP socket's buffers to a
/// memory cgroup only once it is accepted: a connection waiting in a listener's backlog keeps what
/// it received on the host's account alone (its `tcp_mem`, shared by every TCP connection of the
/// host). Nothing but a count bounds those, so the supervisor counts them: the bytes queued in every
/// TCP socket of the sandbox's network namespace, accepted or not, plus a page per socket for the
/// socket itself, from `/proc/<init>/net/tcp` and `tcp6` (the kernel's lines, nothing the sandbox
/// writes).
///
/// Those two files cost: the kernel walks the host's whole TCP hash table to list one namespace's
/// sockets (262144 buckets here: 3.5 ms of the daemon's CPU per file, 13% of a core at one sample
/// every 50 ms). `sockstat` and `sockstat6` count the namespace's TCP sockets (listeners,
/// connections, those still in a backlog) for a few microseconds, so the lists are read only when
/// there is a socket to list.
enum SocketQueues {
    static let perSocketBytes: Int64 = 4096

    /// The estimate for the network namespace of `pid`; 0 if it cannot be read.
    static func estimatedBytes(ofNetnsOf pid: pid_t) -> Int64 {
        guard tcpSocketsInUse(ofNetnsOf: pid) > 0 else { return 0 }
        var total: Int64 = 0
        for file in ["tcp", "tcp6"] { total += estimate(path: "/proc/\(pid)/net/\(file)") }
        return total
    }

    /// The namespace's TCP sockets in use, IPv4 and IPv6 (`TCP: inuse N …`, `TCP6: inuse N`); a
    /// file that cannot be read counts as a socket, so the full lists are read.
    static func tcpSocketsInUse(ofNetnsOf pid: pid_t) -> Int64 {
        var total: Int64 = 0
        for (file, key) in [("sockstat", "TCP:"), ("sockstat6", "TCP6:")] {
            guard let text = try? FileIO.read("/proc/\(pid)/net/\(file)") else { return 1 }
            total += inUse(sockstat: text, protocol: key) ?? 1
        }
        return total
    }

    /// The `inuse` count on the `key` line of a sockstat file.
    static func inUse(sockstat text: String, protocol key: String) -> Int64? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key + " ") }) else { return nil }
        let words = line.split(separator: " ")
        guard let at = words.firstIndex(of: "inuse"), at + 1 < words.count else { return nil }
        return Int64(words[at + 1])
    }

    /// Each line after the header: "sl local remote st tx_queue:rx_queue …", the queues in hex.
    static func estimate(path: String) -> Int64 {
        guard let (text, complete) = readAll(path) else { return 0 }
        guard complete else { return .max }  // more sockets than any snippet needs
        var total: Int64 = 0
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count > 4 else { continue }
            let queues = fields[4].split(separator: ":")
            total += queues.reduce(perSocketBytes) { $0 + (Int64($1, radix: 16) ?? 0) }
        }
        return total
    }

    /// The whole file, up to `cap` bytes (FileIO.read stops at 64 KiB, ~430 sockets: too few to
    /// see every backlog); `complete` is false when the cap cut it.
    static func readAll(_ path: String, cap: Int = 8 << 20) -> (String, complete: Bool)? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while out.count < cap {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return (String(decoding: out, as: UTF8.self), true) }
            out.append(contentsOf: buf[0..<n])
        }
        return (String(decoding: out, as: UTF8.self), false)
    }
}
