import CSandbox
import CodesandCore
import Foundation
import Glibc
import Logging
import Synchronization

/// The pre-start launchers (Sources/CodesandZygote/launchers): small programs in their
/// interpreter's own language that wait on fd 3 for the program's argv and run it as
/// `interpreter main.ext args` would. A language names its launcher (`launcher = "python3.py"`)
/// and puts `{launcher}` in its `prestart` argv, where the file's text goes: the interpreter gets
/// it as `-c`/`-r`/`-e` code, because the file itself is not visible inside a sandbox (it may be in
/// a build directory, and an image has its own /usr). bash's must be a file: `{launcher_stdin}`
/// stands for /dev/stdin, and only its zygote gets the text there. node's is its main script:
/// `{launcher_file}` stands for a file of the sandbox's own that holds the text (/proc/self/fd/5).
///
/// python3's launcher runs as its zygote, as root on the host, and every launcher runs in every
/// run of its language: each file is held to the zygote library's standard (root's alone to
/// change, with every directory above it), checked as it is read, once per layout (a reload reads
/// them again). The LXD backend hands the same launchers to its containers (LXDPrestart).
public final class Launchers: Sendable {
    /// Where they are, or nil: none found (pre-starting is off for languages that name one).
    let directory: String?
    private let logger: Logger
    /// Per file name: its text, or why it cannot be used (logged once).
    private let loaded = Mutex<[String: Result<String, SandboxError>]>([:])
    /// Per spec: what resolve made of it (each prepare asks; the text's substitution is not free).
    private let resolved = Mutex<[PrestartSpec: PrestartSpec?]>([:])

    public init(config: SandboxConfig, logger: Logger) {
        self.logger = logger
        directory = Self.find(config: config)
    }

    /// `spec` with its launcher's text in place of `{launcher}`; nil when the launcher cannot be
    /// used (the sandbox then starts the plain way: a broken launcher costs speed, never a run).
    public func resolve(_ spec: PrestartSpec) -> PrestartSpec? {
        guard !spec.launcher.isEmpty else { return spec }
        if let known = resolved.withLock({ $0[spec] }) { return known }
        let result = substitute(spec)
        resolved.withLock { $0[spec] = result }
        return result
    }

    private func substitute(_ spec: PrestartSpec) -> PrestartSpec? {
        let text: String
        switch load(spec.launcher) {
        case .success(let t): text = t
        case .failure: return nil
        }
        var resolved = spec
        resolved.argv = spec.argv.map { $0.replacingOccurrences(of: "{launcher}", with: text) }
        // node runs it as its main script: a file on fd 5 that the init makes (CS_FD_PRESTART_FILE).
        if spec.argv.contains(where: { $0.contains("{launcher_file}") }) {
            resolved.argv = resolved.argv.map { $0.replacingOccurrences(of: "{launcher_file}", with: "/proc/self/fd/\(CS_FD_PRESTART_FILE)") }
            resolved.launcherFile = text
        }
        // bash takes its start-up file as a file: the zygote's stdin, which holds the text.
        if spec.argv.contains(where: { $0.contains("{launcher_stdin}") }) {
            resolved.argv = resolved.argv.map { $0.replacingOccurrences(of: "{launcher_stdin}", with: "/dev/stdin") }
            resolved.launcherOnStdin = text
        }
        return resolved
    }

    private func load(_ name: String) -> Result<String, SandboxError> {
        loaded.withLock { cache in
            if let known = cache[name] { return known }
            let result = Result { try read(name) }.mapError { $0 as? SandboxError ?? SandboxError("\($0)") }
            if case .failure(let why) = result {
                logger.warning("launcher not usable; its language starts the plain way", metadata: ["launcher": "\(name)", "why": "\(why)"])
            }
            cache[name] = result
            return result
        }
    }

    private func read(_ name: String) throws -> String {
        guard let directory else {
            throw SandboxError("no launcher directory (install them with scripts/install, or set sandbox.launcher_dir)")
        }
        let path = directory + "/" + name
        guard ZygoteSet.onlyRootCanChange(path) else {
            throw SandboxError("\(path), or a directory above it, is not root's alone to change; chown root and chmod go-w them")
        }
        let fd = try sys("open", path) { open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size <= Self.maxBytes else {
            throw SandboxError("\(path) is not a regular file of at most \(Self.maxBytes) bytes")
        }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        let n = try sys("read", path) { bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) } }
        guard n == bytes.count, !bytes.contains(0) else { throw SandboxError("\(path) changed while read, or holds a NUL byte") }
        return String(decoding: bytes, as: UTF8.self)
    }

    static let maxBytes = 65536

    /// `sandbox.launcher_dir`, or the first that exists of: `launchers` next to the executable,
    /// `../lib/codesand/launchers` from it (scripts/install), and the copy a SwiftPM build makes
    /// next to its products. Its real path: what is checked is what is read.
    static func find(config: SandboxConfig) -> String? {
        let candidates: [String]
        if !config.launcherDir.isEmpty {
            candidates = [config.launcherDir]
        } else {
            let (dir, above) = FileIO.executableDirectories()
            candidates = [dir + "/launchers", above + "/lib/codesand/launchers", dir + "/codesand_CodesandZygote.resources/launchers"]
        }
        for candidate in candidates {
            var st = stat()
            guard stat(candidate, &st) == 0, st.st_mode & S_IFMT == S_IFDIR, let real = realpath(candidate, nil) else { continue }
            defer { free(real) }
            return String(cString: real)
        }
        return nil
    }
}
