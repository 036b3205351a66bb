import CodesandCore
import CodesandProtocol

/// What a pool container is created from, and the request-independent limits it carries (pure:
/// unit-tested). Its digest is stored in the container (`user.codesand.spec`): a container of an
/// earlier daemon is adopted only if it was made from the same spec, else it is replaced.
struct LXDInstanceSpec: Sendable, Hashable {
    var lxd: LXDConfig
    /// The program's home (a private tmpfs, as /tmp, /var/tmp and /dev/shm are).
    var home: String
    var tmpfsBytes: Int64
    var tmpfsInodes: Int64
    var limits: LimitSet

    static let snapshot = "clean"
    static let specKey = "user.codesand.spec"

    /// The tmpfs mounts LXC makes at each start, before init: each capped, so a run that fills
    /// one stops at the cap instead of filling the host's disk. Set before the `clean` snapshot,
    /// since a restore brings back the snapshot's config.
    var rawLXC: String {
        let size = "size=\(tmpfsBytes),nr_inodes=\(tmpfsInodes)"
        let homeRel = home.split(separator: "/").joined(separator: "/")
        return [
            "lxc.mount.entry = tmpfs \(homeRel) tmpfs rw,nosuid,nodev,\(size),uid=\(lxd.uid),gid=\(lxd.gid),mode=0700,create=dir 0 0",
            "lxc.mount.entry = tmpfs tmp tmpfs rw,nosuid,nodev,\(size),mode=1777,create=dir 0 0",
            "lxc.mount.entry = tmpfs var/tmp tmpfs rw,nosuid,nodev,\(size),mode=1777,create=dir 0 0",
            "lxc.mount.entry = tmpfs dev/shm tmpfs rw,nosuid,nodev,\(size),mode=1777,create=dir 0 0",
        ].joined(separator: "\n") + "\n"
    }

    /// The instance config: memory without swap, a process cap, a hard CPU quota, the mounts.
    var config: [String: String] {
        [
            "limits.memory": "\(limits.memoryBytes)",
            "limits.memory.swap": "false",
            "limits.processes": "\(limits.pids + 1)",  // and the container's init
            "limits.cpu.allowance": "\(lxd.cpuAllowanceMs)ms/100ms",
            "raw.lxc": rawLXC,
            "boot.autostart": "false",
        ]
    }

    /// Where the root filesystem comes from: an image (alias or fingerprint) or another container's snapshot.
    var source: JSONValue {
        if !lxd.source.isEmpty { return .object(["type": .string("copy"), "source": .string(lxd.source)]) }
        return .object(["type": .string("image"), (Self.isFingerprint(lxd.image) ? "fingerprint" : "alias"): .string(lxd.image)])
    }

    /// An image named by its fingerprint (or a prefix of it) rather than an alias.
    static func isFingerprint(_ image: String) -> Bool {
        image.count >= 12 && image.allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }

    /// A stable digest of everything the container is made from (FNV-1a, hex).
    var digest: String {
        let text = ([lxd.image, lxd.source, lxd.profiles.joined(separator: ","), home]
                    + config.keys.sorted().map { "\($0)=\(config[$0]!)" }).joined(separator: "\n")
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return String(h, radix: 16)
    }

    /// `POST /1.0/instances`: no network device (a profile's `eth0` is masked), the spec's digest.
    func createBody(name: String) -> JSONValue {
        var cfg = config.mapValues { JSONValue.string($0) }
        cfg[Self.specKey] = .string(digest)
        return .object([
            "name": .string(name), "type": .string("container"), "source": source,
            "profiles": .array(lxd.profiles.map { .string($0) }), "config": .object(cfg),
            "devices": .object(["eth0": .object(["type": .string("none")])]),
        ])
    }
}
