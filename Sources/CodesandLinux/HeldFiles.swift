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
        try withFile(path) { fd in
            var out: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 8192)
            while out.count < 65536 {
                let at = off_t(out.count)
                let n = try sys("pread", path) { buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, at) } }
                if n == 0 { break }
                out.append(contentsOf: buf[0..<n])
            }
            return String(decoding: out, as: UTF8.self)
        }
    }

    func readInt(_ path: String) throws -> Int64 {
        let text = try read(path).trimmingCharacters(in: " \n")
        guard let v = Int64(text) else { throw SystemCallError(function: "parse", context: path, errno: EINVAL) }
        return v
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
