import CodesandCore
import Glibc

/// A failed system call: which function, on what, and the errno.
public struct SystemCallError: Error, CustomStringConvertible, Sendable {
    public var function: String
    public var context: String
    public var errno: Int32
    public var description: String {
        let what = context.isEmpty ? function : "\(function)(\(context))"
        return "\(what): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Runs a syscall-style call (returns -1 and sets errno on failure), retrying EINTR.
@discardableResult
func sys<T: BinaryInteger>(_ function: String, _ context: String = "", _ body: () -> T) throws -> T {
    while true {
        let r = body()
        if r >= 0 { return r }
        let e = errno
        if e == EINTR { continue }
        throw SystemCallError(function: function, context: context, errno: e)
    }
}

enum FileIO {
    /// Writes a whole small file (cgroup control files).
    static func write(_ path: String, _ text: String) throws {
        let fd = try sys("open", path) { open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let n = try sys("write", path) { bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } }
        if n != bytes.count { throw SystemCallError(function: "write", context: path, errno: EIO) }
    }

    /// The running executable's directory and the one above it (where an installed daemon finds
    /// `../lib/codesand`).
    static func executableDirectories() -> (own: String, parent: String) {
        var exe = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &exe, exe.count - 1)
        let path = n > 0 ? String(decoding: exe[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return (dir, dir.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))
    }

    /// Reads a small file whole (cgroup and proc files: at most 64 KiB).
    static func read(_ path: String) throws -> String {
        let fd = try sys("open", path) { open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while out.count < 65536 {
            let n = try sys("read", path) { buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) } }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func readInt(_ path: String) throws -> Int64 {
        let text = try read(path).trimmingCharacters(in: " \n")
        guard let v = Int64(text) else { throw SystemCallError(function: "parse", context: path, errno: EINVAL) }
        return v
    }

    static func mkdirs(_ path: String, mode: mode_t = 0o755) throws {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, mode) < 0 && errno != EEXIST {
                throw SystemCallError(function: "mkdir", context: current, errno: errno)
            }
        }
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

/// Monotonic nanoseconds.
func monotonicNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
