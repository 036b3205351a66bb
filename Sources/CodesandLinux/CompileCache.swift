import CodesandCore
import CodesandProtocol
import Foundation
import Glibc
import Logging
import Synchronization

/// Compiled programs kept by the daemon, so that the same code with the same flags, compiler and
/// system skips its compile stage (gcc, g++, go: languages whose compile writes one file, named by
/// `compile_output`; java writes a class file per class and is not cached).
///
/// Written only by the daemon: after a compile stage that succeeded, before the run stage starts
/// (nothing of the snippet has run yet, and the sandbox must hold no process but its init), the
/// output is read out of the sandbox's home through a directory fd, with O_NOFOLLOW, as a regular
/// file of bounded size, into a root-only directory (state_dir/compile-cache, 0700), named by the
/// SHA-256 of what decides it (CompileCacheKey). On a hit the daemon writes a copy into the new
/// sandbox's home before handing it the job: the sandbox never sees the cache's own file.
final class CompileCache: Sendable {
    let directory: String
    private let index: Mutex<CompileCacheIndex>
    private let logger: Logger
    private let counters = Mutex((hits: 0, misses: 0, stored: 0, refused: 0))

    /// The cache of `config` (nil: disabled, or its directory is not root's alone).
    static func open(config: SandboxConfig, logger: Logger) -> CompileCache? {
        let index = CompileCacheIndex(maxEntries: config.compileCacheEntries, maxBytes: config.compileCacheBytes)
        guard index.isEnabled else { return nil }
        let dir = config.stateDir + "/compile-cache"
        mkdir(dir, 0o700)
        var st = stat()
        guard lstat(dir, &st) == 0, st.st_mode & S_IFMT == S_IFDIR, st.st_uid == geteuid(), chmod(dir, 0o700) == 0 else {
            logger.warning("compile cache disabled: \(dir) is not a directory of the daemon's user")
            return nil
        }
        return CompileCache(directory: dir, index: index, logger: logger)
    }

    private init(directory: String, index: CompileCacheIndex, logger: Logger) {
        self.directory = directory
        self.logger = logger
        var index = index
        // What an earlier daemon kept, oldest first (a key names everything it depends on, so an
        // entry of another compiler or image just never hits and ages out); its cut writes go.
        var found: [(name: String, bytes: Int64, mtime: Int)] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            var st = stat()
            let path = directory + "/" + name
            if Self.isKey(name), lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG {
                found.append((name, Int64(st.st_size), st.st_mtim.tv_sec))
            } else {
                unlink(path)
            }
        }
        for entry in found.sorted(by: { $0.mtime < $1.mtime }) {
            for gone in index.insert(entry.name, bytes: entry.bytes) { unlink(directory + "/" + gone) }
        }
        self.index = Mutex(index)
    }

    static func isKey(_ name: String) -> Bool {
        name.utf8.count == 64 && name.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    var stats: (hits: Int, misses: Int, stored: Int, refused: Int) { counters.withLock { $0 } }
    var entryCount: Int { index.withLock { $0.count } }
    var totalBytes: Int64 { index.withLock { $0.totalBytes } }

    /// The job's key, or nil when its compile is not cached (no single output file, no compiler file).
    func key(for job: SandboxJob, layout: SandboxLayout) -> String? {
        guard let compile = job.compile, !compile.output.isEmpty, let compiler = compile.argv.first else { return nil }
        var tool = stat(), root = stat()
        guard stat(layout.systemRoot + compiler, &tool) == 0, stat(layout.systemRoot.isEmpty ? "/" : layout.systemRoot, &root) == 0
        else { return nil }
        // The compiler file itself (an upgrade between reloads), and the system it is seen in.
        let system = [layout.config.rootfs, layout.systemRoot, "\(root.st_dev):\(root.st_ino)",
                      "\(compiler) \(tool.st_dev):\(tool.st_ino):\(tool.st_size):\(tool.st_mtim.tv_sec).\(tool.st_mtim.tv_nsec)"]
        return CompileCacheKey.make(language: compile.language, version: compile.version, argv: compile.argv,
                                    env: job.env, code: job.code, system: system)
    }

    /// A stored compile: the compiler's messages and the program.
    struct Entry {
        var messages: [OutputChunk]
        var program: [UInt8]

        /// The compile stage as it ended when it ran: exit 0, its messages, no time spent now.
        var stage: StageOutcome {
            let bytes = messages.reduce(0) { $0 + $1.text.utf8.count }
            var output = OutputCollector(maxBytes: bytes + 1, maxLines: bytes + 1)
            for chunk in messages { output.append(Array(chunk.text.utf8), from: chunk.stream) }
            return StageOutcome(waitStatus: 0, timedOut: false, oomKilled: false, output: output, wallNs: 0, cpuNs: 0,
                                memoryPeakBytes: 0)
        }
    }

    /// The entry of `key`, or nil (counted as a miss).
    func lookup(_ key: String) -> Entry? {
        let found = index.withLock { $0.touch(key) } ? read(key) : nil
        counters.withLock { if found != nil { $0.hits += 1 } else { $0.misses += 1 } }
        return found
    }

    private func read(_ key: String) -> Entry? {
        let limit = index.withLock { $0.maxEntryBytes }
        let fd = Glibc.open(directory + "/" + key, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { forget(key); return nil }
        defer { close(fd) }
        guard let bytes = Self.readRegular(fd, limit: limit), let entry = EntryFormat.decode(bytes) else {
            forget(key)
            return nil
        }
        return entry
    }

    private func forget(_ key: String) {
        index.withLock { i in
            i.remove(key)
            unlink(directory + "/" + key)
        }
    }

    /// Writes the entry's program into the sandbox's home as `output`, the sandbox user's, 0755.
    /// Before the job is handed over: nothing of the snippet runs in the sandbox yet.
    func place(_ entry: Entry, into sandbox: SandboxInstance, home: String, output: String, uid: UInt32) throws {
        let dir = try Self.openHome(of: sandbox, home: home)
        defer { close(dir) }
        let fd = try sys("openat", output) { openat(dir, output, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o700) }
        defer { close(fd) }
        try Self.writeAll(fd, entry.program, what: output)
        try sys("fchown", output) { fchown(fd, uid, uid) }
        try sys("fchmod", output) { fchmod(fd, 0o755) }
    }

    /// Keeps what a compile that succeeded wrote, with its messages. Between the compile and the
    /// run stage: the compiler has exited and nothing but the init may run in the sandbox (else
    /// something could still change the file, and nothing is kept). Never fails the run.
    func store(_ key: String, from sandbox: SandboxInstance, home: String, output: String, messages: OutputCollector) {
        let limit = index.withLock { $0.maxEntryBytes }
        guard sandbox.cgroup.processes() == [sandbox.initPID],
              let dir = try? Self.openHome(of: sandbox, home: home) else { return refuse(key, "the sandbox is not idle") }
        defer { close(dir) }
        guard let program = Self.readOutput(in: dir, named: output, limit: limit) else {
            return refuse(key, "\(output) is not a regular file within \(limit) bytes")
        }
        let bytes = EntryFormat.encode(Entry(messages: messages.texts().output, program: program))
        guard Int64(bytes.count) <= limit else { return refuse(key, "the entry is more than \(limit) bytes") }
        let temp = "\(directory)/tmp-\(key)-\(UInt64.random(in: 0...UInt64.max))"
        let out = Glibc.open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard out >= 0 else { return refuse(key, "cannot create \(temp): errno \(errno)") }
        let written = (try? Self.writeAll(out, bytes, what: temp)) != nil
        close(out)
        guard written else { unlink(temp); return refuse(key, "cannot write \(temp)") }
        // Two identical runs at once both get here: each renames a whole file over the other's.
        index.withLock { i in
            guard rename(temp, directory + "/" + key) == 0 else { unlink(temp); return }
            for gone in i.insert(key, bytes: Int64(bytes.count)) { unlink(directory + "/" + gone) }
        }
        counters.withLock { $0.stored += 1 }
    }

    private func refuse(_ key: String, _ why: String) {
        counters.withLock { $0.refused += 1 }
        logger.debug("compile not cached", metadata: ["key": "\(key)", "why": "\(why)"])
    }

    /// The sandbox's home, seen from the daemon through its init's root (the init is our unreaped
    /// child: its pid is its own). The path's directories are the init's, made before any program.
    static func openHome(of sandbox: SandboxInstance, home: String) throws -> Int32 {
        let path = "/proc/\(sandbox.initPID)/root\(home)"
        return try sys("open", path) { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
    }

    /// The file `name` in the directory `dir`, if it is a regular file of at most `limit` bytes
    /// (a symlink is not followed, a FIFO does not block).
    static func readOutput(in dir: Int32, named name: String, limit: Int64) -> [UInt8]? {
        let fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return readRegular(fd, limit: limit)
    }

    /// A regular file's bytes, at most `limit`; nil for anything else (a FIFO, a device, a
    /// directory), a larger file, or one that grows while read.
    static func readRegular(_ fd: Int32, limit: Int64) -> [UInt8]? {
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, Int64(st.st_size) <= limit else { return nil }
        let size = Int(st.st_size)
        var bytes = [UInt8](repeating: 0, count: size + 1)
        var got = 0
        while got <= size {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, size + 1 - got, off_t(got)) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { break }
            got += n
        }
        return got == size ? Array(bytes[0..<size]) : nil
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], what: String) throws {
        var off = 0
        while off < bytes.count {
            off += try sys("write", what) { bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) } }
        }
    }
}

/// An entry file: "codesand-cc 1\n", the message count, each message (stream byte, length, text),
/// then the program's length and bytes; lengths are little-endian UInt64.
enum EntryFormat {
    static let magic = Array("codesand-cc 1\n".utf8)

    static func encode(_ entry: CompileCache.Entry) -> [UInt8] {
        var out = magic
        func number(_ n: Int) { withUnsafeBytes(of: UInt64(n).littleEndian) { out.append(contentsOf: $0) } }
        number(entry.messages.count)
        for chunk in entry.messages {
            out.append(chunk.stream == .stdout ? 1 : 2)
            let text = Array(chunk.text.utf8)
            number(text.count)
            out += text
        }
        number(entry.program.count)
        return out + entry.program
    }

    static func decode(_ bytes: [UInt8]) -> CompileCache.Entry? {
        guard bytes.starts(with: magic) else { return nil }
        var at = magic.count
        func number() -> Int? {
            guard at + 8 <= bytes.count else { return nil }
            var n: UInt64 = 0
            for i in 0..<8 { n |= UInt64(bytes[at + i]) << (8 * UInt64(i)) }
            at += 8
            return n <= UInt64(bytes.count) ? Int(n) : nil
        }
        guard let count = number() else { return nil }
        var messages: [OutputChunk] = []
        for _ in 0..<count {
            guard at < bytes.count, bytes[at] == 1 || bytes[at] == 2 else { return nil }
            let stream: CodesandProtocol.OutputStream = bytes[at] == 1 ? .stdout : .stderr
            at += 1
            guard let n = number(), at + n <= bytes.count else { return nil }
            messages.append(OutputChunk(stream: stream, text: String(decoding: bytes[at..<(at + n)], as: UTF8.self)))
            at += n
        }
        guard let n = number(), at + n == bytes.count else { return nil }
        return CompileCache.Entry(messages: messages, program: Array(bytes[at...]))
    }
}
