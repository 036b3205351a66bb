import Foundation
#if canImport(Glibc)
import Glibc
#endif

// What `soak` reads about the daemon from the host: /proc/PID and the slots' cgroup directories.
// It needs to run on the daemon's host, in its pid namespace, with the right to read /proc/PID
// (root, or the daemon's user).

/// The daemon's resources at one moment.
struct DaemonSnapshot: Codable, Sendable {
    /// Resident memory (VmRSS), KiB.
    var rssKiB: Int
    /// Open fds, but those below: what must not grow.
    var fds: Int
    /// Fds of namespaces (`net:[…]`, `mnt:[…]`: what a slot keeps for its next sandbox) and of files
    /// under the slots' cgroups (their counters, held open): at most a few per slot, however many runs.
    var namespaceFds = 0
    var cgroupFileFds = 0
    /// The other fds by kind (pipe, socket, anon_inode:[eventfd], file…), to name what grew.
    var fdKinds: [String: Int] = [:]
    var threads: Int
    /// Its children in state Z (exited, not reaped).
    var zombies: [Int32]
    /// Lines of /proc/PID/mountinfo: the mounts of its (the host's) mount namespace.
    var mounts: Int
    /// Directories under the slots' cgroup parents (status's sandbox_cgroups), the parents included.
    var cgroupDirs: Int
    /// Processes on the host whose command line carries AbuseKind.daemonMarker (escaped background daemons).
    var markedProcesses: [Int32]

    enum CodingKeys: String, CodingKey {
        case rssKiB = "rss_kib", fds, namespaceFds = "namespace_fds", cgroupFileFds = "cgroup_file_fds", fdKinds = "fd_kinds", threads, zombies,
             mounts, cgroupDirs = "cgroup_dirs", markedProcesses = "marked_processes"
    }
}

/// Reads a daemon's /proc entries. Each read is cheap (a few files); the host-wide scan for zombies
/// and marked processes reads every /proc/N/stat once.
struct DaemonProbe: Sendable {
    let pid: Int32
    let cgroupParents: [String]

    enum ProbeError: Error, CustomStringConvertible {
        case unreadable(String)
        var description: String {
            switch self {
            case .unreadable(let path): "cannot read \(path): is the daemon running on this host, and are you root?"
            }
        }
    }

    func snapshot() throws -> DaemonSnapshot {
        let status = try read("/proc/\(pid)/status")
        func field(_ name: String) -> Int {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .flatMap { Int($0.dropFirst(name.count + 1).split(whereSeparator: \.isWhitespace).first ?? "") } ?? -1
        }
        guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else {
            throw ProbeError.unreadable("/proc/\(pid)/fd")
        }
        let mountinfo = try read("/proc/\(pid)/mountinfo")
        var zombies: [Int32] = [], marked: [Int32] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let other = Int32(entry), other != getpid() else { continue }
            if let (state, parent) = Self.stateAndParent(other), parent == pid, state == "Z" { zombies.append(other) }
            if let cmd = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
               String(decoding: cmd, as: UTF8.self).contains(AbuseKind.daemonMarker) {
                marked.append(other)
            }
        }
        var namespaces = 0, cgroupFiles = 0, kinds: [String: Int] = [:]
        for fd in fds {
            var link = [CChar](repeating: 0, count: 4096)
            let n = readlink("/proc/\(pid)/fd/\(fd)", &link, link.count - 1)
            guard n > 0 else { continue }
            let target = String(decoding: link[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if target.hasPrefix("net:[") || target.hasPrefix("mnt:[") { namespaces += 1 }
            else if cgroupParents.contains(where: { target.hasPrefix($0 + "/") }) { cgroupFiles += 1 }
            else { kinds[Self.kind(ofLink: target), default: 0] += 1 }
        }
        return DaemonSnapshot(rssKiB: field("VmRSS"), fds: fds.count - namespaces - cgroupFiles, namespaceFds: namespaces,
                              cgroupFileFds: cgroupFiles, fdKinds: kinds, threads: field("Threads"), zombies: zombies.sorted(),
                              mounts: mountinfo.split(separator: "\n").count, cgroupDirs: cgroupParents.map(Self.directories).reduce(0, +),
                              markedProcesses: marked.sorted())
    }

    /// "pipe:[123]" → "pipe", "anon_inode:[eventfd]" as it is, a path → "file".
    static func kind(ofLink target: String) -> String {
        if target.hasPrefix("/") { return "file" }
        if target.hasPrefix("anon_inode:") { return target }
        return String(target.prefix { $0 != ":" })
    }

    private func read(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw ProbeError.unreadable(path) }
        return String(decoding: data, as: UTF8.self)
    }

    /// State letter and parent pid from /proc/PID/stat (the command name may hold spaces and parens).
    static func stateAndParent(_ pid: Int32) -> (Character, Int32)? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
        let stat = String(decoding: data, as: UTF8.self)
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 1, let state = fields[0].first, let parent = Int32(fields[1]) else { return nil }
        return (state, parent)
    }

    /// `dir` and every directory below it (0 if it does not exist).
    static func directories(_ dir: String) -> Int {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else { return 0 }
        let below = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return 1 + below.reduce(0) { $0 + directories(dir + "/" + $1) }
    }
}
