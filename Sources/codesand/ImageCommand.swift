import ArgumentParser
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
                """)

        @Argument(help: "The directory to build the image in (created; must not exist or be empty).")
        var directory: String

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

        func run() async throws {
            guard getuid() == 0 else { throw ValidationError("debootstrap needs root") }
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
