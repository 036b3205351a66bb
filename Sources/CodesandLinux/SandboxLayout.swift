import CSandbox
import CodesandCore
import Glibc
import Logging

/// The parts of the C sandbox spec that are the same for every slot, as C strings (the clone child
/// reads them from its copy of our memory). One layout per configuration: a reload makes a new one,
/// and each sandbox is built from exactly one, so a run never mixes two root filesystems.
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
    /// Where the sandbox's system directories come from: "" (the host) or the image directory.
    let systemRoot: String
    /// Interpreters that fork this layout's pre-started interpreters (started on first use).
    let zygotes: ZygoteSet
    /// The languages' pre-start launchers, read (and checked) once for this layout.
    let launchers: Launchers

    init(config: SandboxConfig, poolSize: Int, logger: Logger = Logger(label: "codesand")) throws {
        self.config = config
        systemRoot = config.rootfs == "image" ? config.image : ""
        if !systemRoot.isEmpty {
            var st = stat()
            guard stat(systemRoot + "/usr/bin", &st) == 0 else {
                throw SandboxError("sandbox.image \(systemRoot) is not a root filesystem (no usr/bin); build one with `codesand image build`")
            }
        }
        let root = config.stateDir + "/root"
        try FileIO.mkdirs(root, mode: 0o755)
        var ro: [String] = []
        for path in config.readonlyPaths where FileIO.exists(systemRoot + path) {
            ro += [systemRoot + path, path]
            // The host's mounts below it (a separate /usr/local, a mask over part of /etc) are not
            // in its overlay (sandbox_root.c): each is shown as it is on the host, over it.
            for below in Self.mountPoints(under: systemRoot + path) {
                ro += [below, path + below.dropFirst((systemRoot + path).count)]
            }
        }
        // Top-level names like /bin: a symlink (merged /usr) stays the same symlink inside;
        // a real directory is bind-mounted read-only instead.
        var linkPairs: [String] = []
        for name in config.rootLinks.keys.sorted() {
            let source = systemRoot + "/" + name
            var st = stat()
            guard lstat(source, &st) == 0 else { continue }  // absent on this system
            if st.st_mode & S_IFMT == S_IFLNK {
                var target = [CChar](repeating: 0, count: 4096)
                let n = readlink(source, &target, target.count - 1)
                guard n > 0 else { continue }
                linkPairs += [name, String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)]
            } else if st.st_mode & S_IFMT == S_IFDIR, !config.readonlyPaths.contains("/" + name) {
                ro += [source, "/" + name]
            }
        }
        zygotes = ZygoteSet(config: config, systemRoot: systemRoot, logger: logger)
        launchers = Launchers(config: config, logger: logger)
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

    deinit {
        zygotes.stopAll()
        for p in [rootDir, hostname, home] { free(p) }
        for list in [roPaths, links, masked] + files { Self.freeCArray(list) }
    }

    /// What this layout builds sandboxes from that is gone from the host now (an image or the mount
    /// point removed while serving), said as what to do; nil when all is there.
    func missingSource() -> String? {
        if !systemRoot.isEmpty, !FileIO.exists(systemRoot + "/usr/bin") {
            return "sandbox.image \(systemRoot) is gone (no usr/bin): restore it, or point sandbox.image at another image"
        }
        let root = String(cString: rootDir)
        if !FileIO.exists(root) { return "the sandboxes' mount point \(root) is gone (a reload makes it again)" }
        return nil
    }

    /// True when `path` (absolute, inside the sandbox) is an executable file of its system.
    func isExecutable(_ path: String) -> Bool { access(systemRoot + path, X_OK) == 0 }

    /// Mount points strictly below `dir` in the daemon's mount namespace, parents first.
    static func mountPoints(under dir: String) -> [String] {
        guard let info = SocketQueues.readAll("/proc/self/mountinfo")?.0 else { return [] }
        let points = info.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ", maxSplits: 5)
            return fields.count > 4 ? unescapeMountPath(fields[4]) : nil
        }
        return points.filter { $0.hasPrefix(dir + "/") }.sorted { $0.split(separator: "/").count < $1.split(separator: "/").count }
    }

    /// mountinfo writes space, tab, newline and backslash in paths as \ooo (three octal digits).
    static func unescapeMountPath(_ s: Substring) -> String {
        let bytes = Array(s.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count + 1,
               let v = UInt8(String(decoding: bytes[(i + 1)..<min(i + 4, bytes.count)], as: UTF8.self), radix: 8) {
                out.append(v)
                i += 4
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func freeCArray(_ p: UnsafeMutablePointer<UnsafePointer<CChar>?>) {
        var i = 0
        while let s = p[i] { free(UnsafeMutablePointer(mutating: s)); i += 1 }
        p.deallocate()
    }

    static func cArray(_ items: [String]) -> UnsafeMutablePointer<UnsafePointer<CChar>?> {
        let p = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: items.count + 1)
        for (i, s) in items.enumerated() { p[i] = UnsafePointer(strdup(s)) }
        p[items.count] = nil
        return p
    }
}
