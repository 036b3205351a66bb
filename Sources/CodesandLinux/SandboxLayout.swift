import CSandbox
import CodesandCore
import Glibc

/// The parts of the C sandbox spec that are the same for every slot, as C strings allocated once
/// for the backend's lifetime (the clone child reads them from its copy of our memory).
final class SandboxLayout: @unchecked Sendable {  // immutable after init
    let rootDir: UnsafeMutablePointer<CChar>
    let hostname: UnsafeMutablePointer<CChar>
    let home: UnsafeMutablePointer<CChar>
    let roPaths: UnsafeMutablePointer<UnsafePointer<CChar>?>
    let links: UnsafeMutablePointer<UnsafePointer<CChar>?>
    let masked: UnsafeMutablePointer<UnsafePointer<CChar>?>
    /// Per slot: the synthetic /etc files (the sandbox user's uid differs per slot).
    let files: [UnsafeMutablePointer<UnsafePointer<CChar>?>]
    let config: SandboxConfig

    init(config: SandboxConfig, poolSize: Int) throws {
        self.config = config
        let root = config.stateDir + "/root"
        try FileIO.mkdirs(root, mode: 0o755)
        // Top-level names like /bin: a symlink on the host (merged /usr) stays a symlink inside;
        // a real directory is bind-mounted read-only instead.
        var ro = config.readonlyPaths
        var linkPairs: [String] = []
        for (name, target) in config.rootLinks.sorted(by: { $0.key < $1.key }) {
            var st = stat()
            guard lstat("/" + name, &st) == 0 else { continue }  // absent on this host
            if st.st_mode & S_IFMT == S_IFLNK {
                linkPairs += [name, target]
            } else if st.st_mode & S_IFMT == S_IFDIR, !ro.contains("/" + name) {
                ro.append("/" + name)
            }
        }
        rootDir = strdup(root)
        hostname = strdup(config.hostname)
        home = strdup(config.home)
        roPaths = Self.cArray(ro)
        links = Self.cArray(linkPairs)
        masked = Self.cArray(config.maskedPaths)
        files = (0..<poolSize).map { slot in
            Self.cArray(Self.syntheticFiles(uid: config.uidBase + UInt32(slot), config: config).flatMap { [$0.0, $0.1] })
        }
    }

    /// Files laid over the read-only /etc, so the host's accounts and names are not visible and
    /// name lookups fail at once instead of waiting for an unreachable DNS server.
    static func syntheticFiles(uid: UInt32, config: SandboxConfig) -> [(String, String)] {
        [
            ("/etc/passwd", "root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:\(uid):\(uid):sandbox:\(config.home):/bin/sh\n"
                + "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
            ("/etc/group", "root:x:0:\nsandbox:x:\(uid):\nnogroup:x:65534:\n"),
            ("/etc/hostname", "\(config.hostname)\n"),
            ("/etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\t\(config.hostname)\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
            ("/etc/resolv.conf", ""),
            ("/etc/shadow", ""), ("/etc/gshadow", ""), ("/etc/subuid", ""), ("/etc/subgid", ""),
        ]
    }

    private static func cArray(_ items: [String]) -> UnsafeMutablePointer<UnsafePointer<CChar>?> {
        let p = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: items.count + 1)
        for (i, s) in items.enumerated() { p[i] = UnsafePointer(strdup(s)) }
        p[items.count] = nil
        return p
    }
}
