import Glibc
import Synchronization

/// A slot's cgroup control files that every run reads or writes (usage, peak, CPU time, OOM
/// kills; cgroup.procs only to be written, by each new sandbox's init joining: read through a held
/// descriptor it would show one list for good, v1's cached pid list), kept open and read and
/// written at offset 0: opening one by its path is a walk
/// through kernfs, and those opens were the largest part of the daemon's own CPU per run. On cgroup
/// v2 it is also what makes `memory.peak` a run's: a write resets the peak only as seen through the
/// same file descriptor (Linux ≥ 6.12).
final class HeldFiles: Sendable {
    private let fds = Mutex<[String: Int32]>([:])

    deinit { closeAll() }

    /// The whole file (at most 64 KiB: a cgroup.procs of a fork bomb's thousands of pids fits).
    func read(_ path: String) throws -> String {
        String(decoding: try bytes(path), as: UTF8.self)
    }

    /// A counter file's number ("123\n"), parsed from its bytes: read on every run's path, where
    /// Foundation's trimming and a large zeroed buffer cost more than the read itself.
    func readInt(_ path: String) throws -> Int64 {
        let content = try bytes(path)
        var value: Int64 = 0, digits = 0, negative = false
        for (i, c) in content.enumerated() {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let (times, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times.addingReportingOverflow(Int64(c - UInt8(ascii: "0")))
                if o1 || o2 { throw SystemCallError(function: "parse", context: path, errno: ERANGE) }
                value = sum
                digits += 1
            case UInt8(ascii: "-") where i == 0:
                negative = true
            case UInt8(ascii: " "), UInt8(ascii: "\n"):
                // The number ends here: only white space may follow.
                guard digits > 0, content[(i + 1)...].allSatisfy({ $0 == 0x0A || $0 == 0x20 }) else {
                    throw SystemCallError(function: "parse", context: path, errno: EINVAL)
                }
                return negative ? -value : value
            default:
                throw SystemCallError(function: "parse", context: path, errno: EINVAL)
            }
        }
        guard digits > 0 else { throw SystemCallError(function: "parse", context: path, errno: EINVAL) }
        return negative ? -value : value
    }

    /// The file's bytes: one pread for the usual few bytes of a counter, more for longer files.
    private func bytes(_ path: String) throws -> [UInt8] {
        try withFile(path) { fd in
            var small = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))  // 64 bytes
            let first = try withUnsafeMutableBytes(of: &small) { buf in
                let n = try sys("pread", path) { pread(fd, buf.baseAddress, buf.count, 0) }
                return Array(buf[0..<n])
            }
            if first.count < MemoryLayout.size(ofValue: small) { return first }  // all of it: a short read is the end
            var out = first
            var buf = [UInt8](repeating: 0, count: 8192)
            while out.count < 65536 {
                let at = off_t(out.count)
                let n = try sys("pread", path) { buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, at) } }
                if n == 0 { break }
                out.append(contentsOf: buf[0..<n])
            }
            return out
        }
    }

    func write(_ path: String, _ text: String) throws {
        let bytes = Array(text.utf8)
        try withFile(path) { fd in
            let n = try sys("pwrite", path) { bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) } }
            if n != bytes.count { throw SystemCallError(function: "pwrite", context: path, errno: EIO) }
        }
    }

    /// A copy of the file's held descriptor (close-on-exec), for another process to use: the caller
    /// closes it. A copy, so that closeAll meanwhile cannot hand the number to some other file.
    func duplicate(_ path: String) throws -> Int32 {
        try withFile(path) { fd in try sys("fcntl", path) { fcntl(fd, F_DUPFD_CLOEXEC, 0) } }
    }

    /// Copies of several files' descriptors (duplicate): all of them, or none and the error.
    func duplicates(_ paths: [String]) throws -> [Int32] {
        var fds: [Int32] = []
        do {
            for path in paths { fds.append(try duplicate(path)) }
        } catch {
            for fd in fds { close(fd) }
            throw error
        }
        return fds
    }

    func closeAll() {
        fds.withLock { fds in
            for fd in fds.values { close(fd) }
            fds = [:]
        }
    }

    /// The file's held descriptor (opened read-write where the file allows, else read-only). A
    /// descriptor that fails (its cgroup removed and made again) is opened anew, once.
    private func withFile<T>(_ path: String, _ body: (Int32) throws -> T) throws -> T {
        try fds.withLock { fds in
            for attempt in 0..<2 {
                let fd = try fds[path] ?? open(path)
                fds[path] = fd
                do {
                    return try body(fd)
                } catch let e as SystemCallError where attempt == 0 && (e.errno == ENODEV || e.errno == EBADF) {
                    close(fd)
                    fds[path] = nil
                }
            }
            throw SystemCallError(function: "open", context: path, errno: ENODEV)
        }
    }

    private func open(_ path: String) throws -> Int32 {
        for mode in [O_RDWR, O_RDONLY] {
            let fd = Glibc.open(path, mode | O_CLOEXEC | O_NOFOLLOW)
            if fd >= 0 { return fd }
        }
        return try sys("open", path) { Glibc.open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW) }  // memory.force_empty
    }
}
