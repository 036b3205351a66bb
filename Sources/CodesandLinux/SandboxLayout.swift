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
    let config: SandboxConfig

    init(config: SandboxConfig) throws {
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
    }

    private static func cArray(_ items: [String]) -> UnsafeMutablePointer<UnsafePointer<CChar>?> {
        let p = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: items.count + 1)
        for (i, s) in items.enumerated() { p[i] = UnsafePointer(strdup(s)) }
        p[items.count] = nil
        return p
    }
}
