import CodesandProtocol

/// The `[lxd]` section: where LXD is and what the pool's containers are made from (used when
/// `sandbox.backend = "lxd"`).
public struct LXDConfig: Hashable, Sendable {
    /// LXD's unix socket.
    public var socket = "/var/lib/lxd/unix.socket"
    /// `https://HOST:8443` (a remote LXD or a cluster); "": the unix socket (LXDRemoteConfig.swift).
    public var url = ""
    /// With `url`: the client certificate and its key (PEM files) that LXD trusts.
    public var clientCert = ""
    public var clientKey = ""
    /// With `url`: the server certificate's SHA-256 fingerprint, pinned (LXD's certificate is
    /// self-signed: no CA and no host name is checked, only this).
    public var fingerprint = ""
    /// An image alias or fingerprint the containers are created from.
    public var image = ""
    /// Or an existing container's snapshot, "CONTAINER/SNAPSHOT".
    public var source = ""
    /// The pool's containers are PREFIX-0 … PREFIX-(size-1); others with the prefix are removed.
    public var prefix = "codesand"
    public var project = "default"
    public var profiles = ["default"]
    /// A clustered LXD's members to spread the containers over, slot i on members[i % n] (empty:
    /// the cluster's own placement; a standalone LXD has none).
    public var members: [String] = []
    /// The sandbox user inside the image (runs execute as it, in sandbox.home).
    public var uid: Int64 = 1000
    public var gid: Int64 = 1000
    /// The hard CPU quota of each container: this many ms of CPU per 100 ms (100 = one core).
    public var cpuAllowanceMs: Int64 = 100

    public init() {}

    /// The section's keys, as DefaultConfig lists them.
    static let keys: Set<String> = ["socket", "url", "client_cert", "client_key", "fingerprint", "image", "source", "prefix",
                                    "project", "profiles", "members", "uid", "gid", "cpu_allowance_ms"]

    static func decode(_ t: ConfigNode) throws -> LXDConfig {
        var c = LXDConfig()
        c.socket = try t.path("socket")
        c.url = try t.string("url")
        c.clientCert = try t.string("client_cert")
        c.clientKey = try t.string("client_key")
        c.fingerprint = try t.string("fingerprint")
        c.image = try t.string("image")
        c.source = try t.string("source")
        c.prefix = try t.string("prefix")
        c.project = try t.string("project")
        c.profiles = try t.stringArray("profiles")
        c.members = try t.stringArray("members")
        if c.members.contains(where: { $0.isEmpty }) {
            throw ConfigError(key: "lxd.members", problem: "a member's name is empty")
        }
        c.uid = try t.int("uid", min: 1, max: 4_294_967_294)
        c.gid = try t.int("gid", min: 1, max: 4_294_967_294)
        c.cpuAllowanceMs = try t.int("cpu_allowance_ms", min: 1, max: 100_000)
        guard !c.prefix.isEmpty, c.prefix.count <= 40, c.prefix.first!.isLetter,
              c.prefix.allSatisfy({ ($0.isLetter || $0.isNumber || $0 == "-") && $0.isASCII }) else {
            throw ConfigError(key: "lxd.prefix", problem: "must start with a letter and hold only letters, digits and -, at most 40, got \"\(c.prefix)\"")
        }
        try c.checkRemoteKeys()
        if !c.source.isEmpty {
            let parts = c.source.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ConfigError(key: "lxd.source", problem: "must be \"CONTAINER/SNAPSHOT\", got \"\(c.source)\"")
            }
        }
        return c
    }

    /// Checks what only the LXD backend needs (a config for the native one may leave these empty).
    public func validateForBackend() throws {
        guard image.isEmpty != source.isEmpty else {
            throw ConfigError(key: "lxd.image", problem: "the LXD backend needs exactly one of lxd.image and lxd.source")
        }
        try checkRemoteFiles()
    }
}

extension ConfigLoader {
    /// `[sandbox] backend` and the `[lxd]` section, into the sandbox config.
    static func decodeBackend(_ root: ConfigNode, into sandbox: inout SandboxConfig) throws {
        let sb = try root.table("sandbox")
        let backend = try sb.string("backend")
        guard backend == "native" || backend == "lxd" else {
            throw ConfigError(key: "sandbox.backend", problem: "must be \"native\" or \"lxd\", got \"\(backend)\"")
        }
        let node = try root.table("lxd")
        if let extra = node.keys.sorted().first(where: { !LXDConfig.keys.contains($0) }) {
            throw ConfigError(key: "lxd.\(extra)", problem: "unknown key")
        }
        sandbox.backend = backend
        sandbox.lxd = try LXDConfig.decode(node)
        if backend == "lxd" { try sandbox.lxd.validateForBackend() }
    }
}
