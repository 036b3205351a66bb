// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "codesand",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "codesandd", targets: ["codesandd"]),
        .executable(name: "codesand", targets: ["codesand"]),
        .executable(name: "codesand-spawner", targets: ["codesand-spawner"]),
        .library(name: "CodesandClient", targets: ["CodesandClient"]),
        .library(name: "CodesandProtocol", targets: ["CodesandProtocol"]),
        .executable(name: "codesand-ircbot", targets: ["codesand-ircbot"]),
        .library(name: "CCodesand", targets: ["CCodesand"]),
        // The sandbox C code as a shared library, for the zygotes: interpreters that load it with
        // their FFI (python3: ctypes) and fork sandboxes from an initialised state (zygote.c).
        .library(name: "CodesandZygote", type: .dynamic, targets: ["CodesandZygote"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        // Wire types only: JSON-RPC envelope, method params/results, error codes. No NIO.
        .target(name: "CodesandProtocol"),
        // The bots' async client library.
        .target(name: "CodesandClient", dependencies: [
            "CodesandProtocol",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // Config, language table, limits, scheduling, output assembly, the backend protocol. No syscalls.
        .target(name: "CodesandCore", dependencies: [
            "CodesandProtocol",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "TOMLKit", package: "TOMLKit"),
        ]),
        // C: only what must run between clone() and execve().
        .target(name: "CSandbox"),
        // posix_spawn done once: how every host program is started (no shell, fds and signals reset).
        .target(name: "CodesandSpawn", dependencies: ["CSandbox"]),
        // CSandbox again as a library for the zygotes, without the Swift runtime: no Swift start
        // files, the (unused) standard library linked statically, so nothing of it is loaded.
        // Its `launchers` (the languages' pre-start launchers, python3's the zygote's) are copied next
        // to the build's products, as scripts/install copies them next to the installed library.
        .target(name: "CodesandZygote", resources: [.copy("launchers")], cSettings: [.headerSearchPath("../CSandbox/include")],
                // -z now: each init, a clone of its zygote, would otherwise resolve the libc calls
                // of its set-up (which the zygote never makes) at their first call, every sandbox.
                linkerSettings: [.unsafeFlags(["-nostartfiles", "-static-stdlib", "-Xlinker", "-z", "-Xlinker", "now"])]),
        // The zygote of plain sandboxes (no pre-started interpreter): C code, no threads.
        .executableTarget(name: "codesand-spawner", dependencies: ["CSandbox"],
                          linkerSettings: [.unsafeFlags(["-static-executable"])]),
        // The native backend: namespaces, mounts, cgroups v1/v2, the run supervisor.
        .target(name: "CodesandLinux", dependencies: [
            "CSandbox", "CodesandCore", "CodesandProtocol", "CodesandSpawn",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The LXD backend: LXD's REST API over NIO (HTTP/1.1 and exec websockets on its unix socket or TLS), a pool
        // of containers restored to a `clean` snapshot after each run.
        .target(name: "CodesandLXD", dependencies: [
            "CodesandCore", "CodesandProtocol", "CodesandLinux",  // CodesandLinux: the pre-start launchers, shared
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOWebSocket", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Socket, framing, JSON-RPC dispatch.
        .target(name: "CodesandServer", dependencies: [
            "CodesandCore", "CodesandProtocol", "CodesandClient",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "codesandd", dependencies: [
            "CodesandServer", "CodesandLinux", "CodesandLXD", "CodesandCore", "CodesandProtocol",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            // The daemon's services (server, pool, watchdog, reload) under one ServiceGroup: graceful SIGTERM.
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "codesand", dependencies: [
            "CodesandClient", "CodesandProtocol", "CodesandSpawn",
            // `image build`: the config's LXD settings, and the import into LXD (--lxd).
            "CodesandCore", "CodesandLXD",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // The C client for bots in other languages (also a plain `make` in clients/c), on json-c.
        .target(name: "CCodesand", path: "clients/c", sources: ["codesand.c", "message.c"],
                linkerSettings: [.linkedLibrary("json-c")]),
        // The IRC bot's logic: IRC over NIO (plain or TLS), CAP and SASL, reconnecting, a paced send
        // queue, triggers, per-nick rate limit, shaped replies, its TOML config file.
        .target(name: "CodesandIRCBot", dependencies: [
            "CodesandClient", "CodesandProtocol",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "TOMLKit", package: "TOMLKit"),
        ]),
        .executableTarget(name: "codesand-ircbot", dependencies: [
            "CodesandIRCBot", "CodesandClient", "CodesandProtocol",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "CodesandProtocolTests", dependencies: ["CodesandProtocol"]),
        .testTarget(name: "CodesandCoreTests", dependencies: [
            "CodesandCore", "CodesandProtocol",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The native backend's logic without root: the stage state machine on a manual clock, pipe reads, launchers.
        .testTarget(name: "CodesandLinuxTests", dependencies: [
            "CodesandLinux", "CodesandCore", "CodesandProtocol", "CSandbox", "CodesandSpawn",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // What tests of several targets start: a daemon in the test process (LiveDaemon), programs
        // (ChildProcess). Not a test target itself.
        .target(name: "CodesandTestSupport", dependencies: [
            "CodesandCore", "CodesandLinux", "CodesandServer", "CodesandSpawn",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], path: "Tests/CodesandTestSupport"),
        // The client library: wire decoding and streaming against fakes, and the Swift and C clients
        // against a real daemon (as root).
        .testTarget(name: "CodesandClientTests", dependencies: [
            "CodesandClient", "CodesandProtocol", "CodesandTestSupport", "CCodesand",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .testTarget(name: "CodesandServerTests", dependencies: [
            "CodesandServer", "CodesandCore", "CodesandProtocol", "CodesandClient",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], exclude: ["FuzzCorpus"]),  // read from the source tree by FuzzTests
        // The IRC bot against real IRC servers (ngircd; InspIRCd with Anope for TLS and SASL) and a real
        // daemon (as root), the C client's test program.
        .testTarget(name: "IRCBotTests", dependencies: [
            "CodesandIRCBot", "CodesandClient", "CodesandProtocol", "CodesandTestSupport",
            "CodesandServer", "CodesandLinux", "CodesandCore", "CodesandSpawn",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The LXD backend's logic without LXD: request paths, the run's stage machine, config.
        .testTarget(name: "CodesandLXDTests", dependencies: [
            "CodesandLXD", "CodesandCore", "CodesandProtocol",
        ]),
        // The LXD backend against a private LXD (scripts/lxd-test-env), as root.
        .testTarget(name: "LXDTests", dependencies: [
            "CodesandLXD", "CodesandLinux", "CodesandCore", "CodesandProtocol", "CodesandClient", "CodesandTestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The IRC bot's logic without servers: messages and framing, the session, output shaping,
        // CAP and SASL, backoff, the send queue, the config file.
        .testTarget(name: "IRCBotUnitTests", dependencies: [
            "CodesandIRCBot", "CodesandProtocol", "CodesandClient",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        // Real sandboxes, as root: the native backend end to end and the daemon over its socket.
        .testTarget(name: "SandboxTests", dependencies: [
            "CodesandLinux", "CodesandCore", "CodesandProtocol", "CodesandServer", "CodesandClient", "CodesandSpawn", "CSandbox",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
    ]
)
