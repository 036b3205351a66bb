import ArgumentParser
import CodesandCore
import CodesandLXD
import CodesandSpawn
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `codesand image build DIR`: a root filesystem for `sandbox.rootfs = "image"`, made with
/// debootstrap and Debian's packages of the chosen languages.
struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Build root filesystems for the sandboxes.", subcommands: [Build.self])

    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "build",
            abstract: "Build an image with debootstrap (as root): Debian minbase plus the languages' packages.",
            discussion: """
                Then set sandbox.rootfs = "image" and sandbox.image = DIR in the config and reload \
                (`codesand pool reload`): the pool moves to the image slot by slot while serving.

                With --lxd ALIAS the root filesystem (DIR, built first unless it holds one already; \
                a temporary directory without DIR) also becomes an LXD image named ALIAS: it gets \
                busybox's init as /sbin/init if it has none and the sandbox user ([lxd] uid/gid), \
                and is uploaded to LXD's API. Then set lxd.image = ALIAS and reload: the pool's \
                containers are replaced one by one while serving.
                """)

        @Argument(help: ArgumentHelp("The directory to build the image in (created; must not exist or be empty). With --lxd: "
                                     + "optional, and an image already built there is used as it is."))
        var directory: String?

        @Option(name: .customLong("lxd"), help: ArgumentHelp("Also import the image into LXD under this alias.", valueName: "alias"))
        var lxdAlias: String?

        @Option(help: ArgumentHelp("LXD's unix socket (default: lxd.socket of the config, else /var/lib/lxd/unix.socket).",
                                   valueName: "path"))
        var lxdSocket: String?

        @Option(help: ArgumentHelp("The daemon's config file, for lxd.socket, lxd.uid/gid and sandbox.home.", valueName: "path"))
        var config = "/etc/codesand/config.toml"

        @Option(help: "Languages to install, comma-separated (default: all that codesand knows).")
        var languages: String = Self.packages.keys.sorted().joined(separator: ",")

        @Option(help: "Debian suite.")
        var suite = "bookworm"

        @Option(help: "Debian mirror.")
        var mirror = "http://deb.debian.org/debian"

        /// Debian packages per language (the sandbox runs them from the image's /usr).
        static let packages: [String: [String]] = [
            "python3": ["python3"], "php": ["php-cli"], "bash": ["bash"], "sh": ["dash"], "fish": ["fish"],
            "zsh": ["zsh"], "perl": ["perl"], "ruby": ["ruby"], "tcl": ["tcl"], "javascript": ["nodejs"],
            "go": ["golang-go"], "c": ["tcc", "libc6-dev"], "gcc": ["gcc", "libc6-dev"], "g++": ["g++"],
            "java": ["default-jdk-headless"],
        ]

        func validate() throws {
            if directory == nil && lxdAlias == nil { throw ValidationError("give the directory to build the image in") }
            if let alias = lxdAlias, alias.isEmpty || alias.contains("/") || alias.contains(":") {
                throw ValidationError("--lxd: \"\(alias)\" is not an image alias (no '/' or ':')")
            }
        }

        func run() async throws {
            guard getuid() == 0 else { throw ValidationError("building an image needs root") }
            guard let alias = lxdAlias else { return try build(directory!) }
            let settings = try lxdSettings()
            let socket = lxdSocket ?? settings.socket
            // Before a debootstrap of minutes, not after it.
            guard FileManager.default.fileExists(atPath: socket) else {
                throw ValidationError("LXD's socket \(socket) is not there: is LXD running? (--lxd-socket, or lxd.socket in \(config))")
            }
            // Absolute: tar's -C options are relative to each other.
            let dir = URL(fileURLWithPath: directory ?? "/var/tmp/codesand-image-\(getpid())").standardizedFileURL.path
            let temporary = directory == nil
            defer { if temporary { try? FileManager.default.removeItem(atPath: dir) } }
            let marker = dir + "/etc/codesand-image"
            if FileManager.default.fileExists(atPath: marker) {
                printError("codesand: using the image already built in \(dir)")
            } else {
                try build(dir)
            }
            var properties = Self.imageProperties(marker: (try? String(contentsOfFile: marker, encoding: .utf8)) ?? "")
            properties["description"] = "codesand image (\(properties["codesand.languages"] ?? "?"))"
            try await LXDImageExport(rootfs: dir, alias: alias, socket: socket, uid: settings.uid, gid: settings.gid,
                                     home: settings.home, properties: properties).run()
        }

        /// What the config file says about LXD (its defaults without one).
        func lxdSettings() throws -> (socket: String, uid: Int64, gid: Int64, home: String) {
            let cfg = FileManager.default.fileExists(atPath: config) ? try ConfigLoader.load(path: config) : try CodesandConfig.defaults()
            return (cfg.sandbox.lxd.socket, cfg.sandbox.lxd.uid, cfg.sandbox.lxd.gid, cfg.sandbox.home)
        }

        /// The LXD image's properties from the image's /etc/codesand-image.
        static func imageProperties(marker: String) -> [String: String] {
            var fields: [String: String] = [:]
            for line in marker.split(separator: "\n") {
                let kv = line.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
            }
            return ["os": "debian", "release": fields["suite"] ?? "", "codesand.languages": fields["languages"] ?? "",
                    "codesand.built": fields["built"] ?? "", "codesand.image_version": LXDImage.layoutVersion]
        }

        func build(_ directory: String) throws {
            let wanted = languages.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
            var include: [String] = []
            for lang in wanted {
                guard let pkgs = Self.packages[lang] else {
                    throw ValidationError("unknown language \"\(lang)\" (known: \(Self.packages.keys.sorted().joined(separator: ", ")))")
                }
                for p in pkgs where !include.contains(p) { include.append(p) }
            }
            let debootstrap = "/usr/sbin/debootstrap"
            guard access(debootstrap, X_OK) == 0 else { throw ValidationError("debootstrap is not installed (apt-get install debootstrap)") }
            let argv = [debootstrap, "--variant=minbase", "--include=" + include.joined(separator: ","), suite, directory, mirror]
            printError("codesand: " + argv.joined(separator: " "))
            let status = try spawnAndWait(argv)
            guard status == 0 else {
                printError("codesand: debootstrap failed (status \(status))")
                throw ExitCode(1)
            }
            // What the image holds, for admins and for tests that tell an image run from a host run.
            let marker = "languages=\(wanted.joined(separator: ","))\nsuite=\(suite)\nbuilt=\(Date())\n"
            try marker.write(toFile: directory + "/etc/codesand-image", atomically: true, encoding: .utf8)
            // Nothing of the build's apt caches is needed inside a sandbox.
            for cache in ["/var/cache/apt/archives", "/var/lib/apt/lists"] {
                if let names = try? FileManager.default.contentsOfDirectory(atPath: directory + cache) {
                    for n in names where n.hasSuffix(".deb") || n.hasSuffix("_Packages") { try? FileManager.default.removeItem(atPath: directory + cache + "/" + n) }
                }
            }
            printOut("image built in \(directory) with \(wanted.joined(separator: ", "))")
        }

        /// With the terminal's stdio (debootstrap's progress shows), no shell.
        func spawnAndWait(_ argv: [String]) throws -> Int32 {
            var spawn = Spawn(argv)
            spawn.stdin = .inherit
            do {
                return Spawn.waitStatus(try spawn.start())
            } catch {
                throw ValidationError("\(error)")
            }
        }
    }
}
