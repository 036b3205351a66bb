import ArgumentParser
import CodesandClient
import CodesandProtocol
import CodesandSpawn
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// The bare side of `codesand bench`: the same program run straight on the host, no sandbox.

/// The program run bare on the host: the interpreter spawned directly on a temp file holding the
/// code (posix_spawn, no shell, no Foundation.Process, whose overhead would blur the comparison).
final class BareRunner: Sendable {
    /// Interpreters by the daemon's language name: absolute Debian paths, never a PATH lookup (which
    /// may find a pyenv shim), with the file extension and environment the daemon's sandbox uses.
    static let interpreters: [String: (path: String, ext: String, env: [String])] = [
        "python3": ("/usr/bin/python3", "py", ["PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"]),
        "bash": ("/bin/bash", "sh", []), "sh": ("/bin/sh", "sh", []), "php": ("/usr/bin/php", "php", []),
        "javascript": ("/usr/bin/node", "js", []), "ruby": ("/usr/bin/ruby", "rb", []),
        "perl": ("/usr/bin/perl", "pl", []),
    ]

    /// Compiled languages: the default configuration's compile and run argv ({dir}: the temp
    /// directory, {file}: the code's file in it; no compile_flags), its file name and the
    /// environment it adds. Each bare run compiles then runs, as the daemon's does; `fresh` are
    /// removed before each run, untimed, as a sandbox never has them: the last run's program (go
    /// does not build again a program whose build id says it is up to date) and go's build cache
    /// (the sandbox's /tmp is new for each run, so the daemon's compile never finds it warm).
    static let compilers: [String: (compile: [String], run: [String], file: String, env: [String], fresh: [String])] = [
        "gcc": (["/usr/bin/gcc", "-o", "{dir}/main", "{file}", "-lm"], ["{dir}/main"], "main.c", [], ["main"]),
        "g++": (["/usr/bin/g++", "-o", "{dir}/main", "{file}"], ["{dir}/main"], "main.cpp", [], ["main"]),
        "go": (["/usr/bin/go", "build", "-o", "{dir}/main", "{file}"], ["{dir}/main"], "main.go",
               ["GOCACHE={dir}/go-cache", "GOPATH={dir}/go", "GO111MODULE=off", "CGO_ENABLED=0", "GOTOOLCHAIN=local"], ["main", "go-cache"]),
        "java": (["/usr/bin/javac", "-J-Xmx256m", "-J-XX:+UseSerialGC", "-J-XX:TieredStopAtLevel=1", "-d", "{dir}", "{file}"],
                 ["/usr/bin/java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-cp", "{dir}", "Main"],
                 "Main.java", [], ["Main.class"]),
    ]

    let argv: [String]
    /// A compiled language's compile argv, spawned (and required to exit 0) before `argv`.
    let compileArgv: [String]?
    let env: [String]
    let directory: String
    /// Emptied before each run, outside the timed part (see `compilers`).
    let fresh: [String]

    /// False for a worker's runner: its directory is inside the main runner's, which removes it.
    let ownsDirectory: Bool

    private init(argv: [String], compileArgv: [String]? = nil, env: [String], directory: String, fresh: [String] = [],
                 ownsDirectory: Bool = true) {
        self.ownsDirectory = ownsDirectory
        self.argv = argv
        self.compileArgv = compileArgv
        self.env = env
        self.directory = directory
        self.fresh = fresh
    }

    /// What the report shows: the compile argv, "&&", then the program's.
    var description: [String] { (compileArgv.map { $0 + ["&&"] } ?? []) + argv }

    deinit { if ownsDirectory { try? FileManager.default.removeItem(atPath: directory) } }

    /// `path` with the directory replaced by worker `worker`'s own.
    private func workerPath(_ path: String, _ worker: Int) -> String {
        worker == 0 ? path : path.replacingOccurrences(of: directory, with: directory + "/w\(worker)")
    }

    /// nil, with a note saying why, when there is nothing to run bare.
    static func make(language: String, code: String, override: String?, notes: inout [String]) -> BareRunner? {
        if override == nil, let compiler = compilers[language] { return makeCompiled(compiler, code: code, notes: &notes) }
        let known = interpreters[language]
        let words = override.map { $0.split(separator: " ").map(String.init) } ?? known.map { [$0.path, "{file}"] }
        guard let words, let program = words.first else {
            notes.append("no bare interpreter known for \(language): bare part skipped (see --bare-command)")
            return nil
        }
        if program.contains("/"), access(program, X_OK) != 0 {
            notes.append("\(program) is not executable here: bare part skipped")
            return nil
        }
        var template = Array("/tmp/codesand-bench-XXXXXX".utf8CString)
        guard let directory = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!).map { String(cString: $0) } })
        else {
            notes.append("cannot make a temp directory: bare part skipped")
            return nil
        }
        let file = directory + "/main" + (known.map { "." + $0.ext } ?? "")
        guard FileManager.default.createFile(atPath: file, contents: Data(code.utf8)) else {
            notes.append("cannot write \(file): bare part skipped")
            return nil
        }
        // The sandbox's environment, so that e.g. unbuffered Python costs the same in both modes.
        let env = ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=\(directory)", "LANG=C.UTF-8", "TMPDIR=/tmp"]
            + (known?.env ?? [])
        return BareRunner(argv: words.map { $0.replacingOccurrences(of: "{file}", with: file) }, env: env,
                          directory: directory)
    }

    private static func makeCompiled(_ c: (compile: [String], run: [String], file: String, env: [String], fresh: [String]),
                                     code: String, notes: inout [String]) -> BareRunner? {
        guard access(c.compile[0], X_OK) == 0 else {
            notes.append("\(c.compile[0]) is not executable here: bare part skipped")
            return nil
        }
        guard let directory = makeTempDirectory(notes: &notes) else { return nil }
        let file = directory + "/" + c.file
        guard FileManager.default.createFile(atPath: file, contents: Data(code.utf8)) else {
            notes.append("cannot write \(file): bare part skipped")
            return nil
        }
        func expand(_ words: [String]) -> [String] {
            words.map { $0.replacingOccurrences(of: "{file}", with: file).replacingOccurrences(of: "{dir}", with: directory) }
        }
        let env = ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=\(directory)", "LANG=C.UTF-8", "TMPDIR=/tmp"] + expand(c.env)
        return BareRunner(argv: expand(c.run), compileArgv: expand(c.compile), env: env, directory: directory,
                          fresh: c.fresh.map { directory + "/" + $0 })
    }

    private static func makeTempDirectory(notes: inout [String]) -> String? {
        var template = Array("/tmp/codesand-bench-XXXXXX".utf8CString)
        guard let directory = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!).map { String(cString: $0) } })
        else {
            notes.append("cannot make a temp directory: bare part skipped")
            return nil
        }
        return directory
    }

    /// C threads spawn and wait for runs until `runs` are done. Threads, not tasks: waitpid and read
    /// block, and blocked tasks would starve Swift's cooperative pool (one thread per core).
    func phase(runs: Int, concurrency: Int, expected: Expected, pauseMs: Int) async -> (samples: [Sample], elapsedS: Double) {
        let next = Counter(start: 0)
        let collected = Mutex<[Sample]>([])
        let start = monotonicNanos()
        await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
            let workersLeft = Counter(start: concurrency)
            for worker in 0..<concurrency {
                Thread { [self] in
                    var mine: [Sample] = []
                    while next.take() < runs {
                        mine.append(measure(expected, worker: worker))
                        if pauseMs > 0 { usleep(UInt32(pauseMs) * 1000) }
                    }
                    collected.withLock { $0 += mine }
                    if workersLeft.take(-1) == 1 { finished.resume() }
                }.start()
            }
        }
        return (collected.withLock { $0 }, secondsSince(start))
    }

    private func measure(_ expected: Expected, worker: Int) -> Sample {
        for path in fresh { try? FileManager.default.removeItem(atPath: workerPath(path, worker)) }
        let start = monotonicNanos()
        let outcome = run(worker: worker)
        let ms = millisecondsSince(start)
        switch outcome {
        case .failure(let error): return Sample(ms: ms, outcome: .failed("bare: \(error.message)"))
        case .success(let exit) where exit.stdout != expected.stdout:
            return Sample(ms: ms, outcome: .failed("bare printed \(BenchReport.quoted(exit.stdout)), first time "
                + BenchReport.quoted(expected.stdout)))
        case .success: return Sample(ms: ms, outcome: .good)
        }
    }

    struct Exit { var stdout: String; var exitedZero: Bool }
    struct Failure: Error { var message: String }

    /// Compiles (a compiled language: the compiler must exit 0), then runs the program.
    /// `worker`: a compiled language's concurrent workers each compile in a directory of their
    /// own (worker 0 in `directory`, n in `directory/wn`), or they would overwrite each other's program.
    func run(worker: Int = 0) -> Result<Exit, Failure> {
        if let compileArgv {
            if worker > 0 {
                let own = directory + "/w\(worker)"
                if !FileManager.default.fileExists(atPath: own) {
                    try? FileManager.default.createDirectory(atPath: own, withIntermediateDirectories: false)
                    for file in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where file.contains(".") {
                        try? FileManager.default.copyItem(atPath: directory + "/" + file, toPath: own + "/" + file)
                    }
                }
                let mine = BareRunner(argv: argv.map { workerPath($0, worker) }, compileArgv: compileArgv.map { workerPath($0, worker) },
                                      env: env.map { workerPath($0, worker) }, directory: own, fresh: [], ownsDirectory: false)
                return mine.run()
            }
            switch spawnAndWait(compileArgv) {
            case .failure(let error): return .failure(error)
            case .success(let exit) where !exit.exitedZero: return .failure(Failure(message: "the bare compile failed"))
            case .success: break
            }
        }
        return spawnAndWait(argv)
    }

    /// Spawns `argv` with stdin from /dev/null, reads stdout and stderr until both close
    /// (stderr is thrown away), and waits for it to exit.
    private func spawnAndWait(_ argv: [String]) -> Result<Exit, Failure> {
        var out: [Int32] = [-1, -1], err: [Int32] = [-1, -1]
        // O_CLOEXEC: a child spawned meanwhile by another worker must not hold our pipes open.
        guard Self.pipe2(&out, O_CLOEXEC) == 0 else { return .failure(Failure(message: "pipe: \(errnoText())")) }
        guard Self.pipe2(&err, O_CLOEXEC) == 0 else {
            close(out[0]); close(out[1])
            return .failure(Failure(message: "pipe: \(errnoText())"))
        }
        var spawn = Spawn(argv, environment: env)
        spawn.stdout = .fd(out[1])
        spawn.stderr = .fd(err[1])
        spawn.searchPath = true
        let pid: pid_t
        do {
            defer { close(out[1]); close(err[1]) }
            pid = try spawn.start()
        } catch {
            close(out[0]); close(err[0])
            return .failure(Failure(message: "\(error)"))
        }

        var stdout: [UInt8] = []
        var open = [out[0], err[0]]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            guard poll(&fds, nfds_t(fds.count), -1) >= 0 || errno == EINTR else { break }
            for fd in fds where fd.revents != 0 {
                let n = read(fd.fd, &buffer, buffer.count)
                if n > 0, fd.fd == out[0] { stdout += buffer[0..<n] }
                if n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN) {
                    close(fd.fd)
                    open.removeAll { $0 == fd.fd }
                }
            }
        }
        open.forEach { close($0) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { return .failure(Failure(message: "waitpid: \(errnoText())")) }
        }
        // WIFEXITED and WEXITSTATUS are C macros Swift cannot import.
        return .success(Exit(stdout: String(decoding: stdout, as: UTF8.self),
                             exitedZero: status & 0x7f == 0 && (status >> 8) & 0xff == 0))
    }

    /// pipe2(2), which Swift's Glibc module does not export: pipe() then FD_CLOEXEC would leave a
    /// moment in which another worker's posix_spawn passes our pipe to its child.
    private static let pipe2 = unsafeBitCast(dlsym(nil, "pipe2"),
                                             to: (@convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32).self)

    private func errnoText() -> String { String(cString: strerror(errno)) }
}
