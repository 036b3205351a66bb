import CSandbox
import CodesandCore
import Foundation
import Glibc
import Logging

/// A spawned sandbox: its init is waiting for one job. Owns the daemon-side pipe ends.
final class SandboxInstance: @unchecked Sendable {  // one owner at a time: its slot, or the run that took it
    let initPID: pid_t
    let cgroup: SlotCgroup
    var control: Int32   // write: the job
    var report: Int32    // read: READY / failures
    var status: Int32    // read: the main process's wait status
    var stdin: Int32     // write
    var stdout: Int32    // read
    var stderr: Int32    // read
    private var reaped = false
    /// The sandbox's network namespace (an fd of it; -1 once handed on or closed). Its slot keeps
    /// it for the slot's next sandbox if no socket but unix ones was made in it (`networkUntouched`):
    /// a new namespace and its teardown are ~1 ms of CPU per run.
    private(set) var netns: Int32 = -1
    private var stagesStarted = 0, stagesReported = 0, networkTouched = false
    /// The base mount namespace its init built (an fd), for the slot to keep; nil if it joined one.
    private(set) var builtBase: Int32?
    /// When the base its root is a copy of was built (SandboxSlots.baseLifetime).
    var baseBorn: ContinuousClock.Instant = .now
    /// The limits the cgroup holds now (writing them again costs a syscall each on the request path).
    private(set) var limits: LimitSet

    private init(initPID: pid_t, cgroup: SlotCgroup, limits: LimitSet, fds: [Int32]) {
        self.initPID = initPID
        self.cgroup = cgroup
        self.limits = limits
        (control, report, status, stdin, stdout, stderr) = (fds[0], fds[1], fds[2], fds[3], fds[4], fds[5])
    }

    /// Spawns the init for `slot` and waits until it reports READY (the sandbox is built).
    /// The interpreter started in it in advance, if any (see PrestartSpec).
    private(set) var prestarted: String?

    /// `joinNetns`: the slot's kept network namespace, or nil for a new one; `joinBase`: the slot's
    /// base mount namespace, or nil to build one (fds, left open: the caller's).
    static func spawn(layout: SandboxLayout, slot: Int, uid: UInt32, cgroup: SlotCgroup, limits: LimitSet,
                      prestart: PrestartSpec? = nil, zygote: Zygote? = nil, logger: Logger? = nil,
                      maxCPUMs: Int64 = 60_000, joinNetns: Int32? = nil, joinBase: Int32? = nil) throws -> SandboxInstance {
        try cgroup.apply(limits: limits)
        let cgroupFDs = try cgroup.joinDescriptors()
        var ours: [Int32] = [], theirs: [Int32] = []
        defer {
            for fd in cgroupFDs + theirs { close(fd) }
        }
        // (daemon end, sandbox end) for: control, report, status, stdin, stdout, stderr.
        for daemonWrites in [true, false, false, true, false, false] {
            var p: [Int32] = [0, 0]
            do {
                try sys("pipe2") { cs_pipe_cloexec(&p) }
            } catch {
                for fd in ours { close(fd) }
                throw error
            }
            ours.append(daemonWrites ? p[1] : p[0])
            theirs.append(daemonWrites ? p[0] : p[1])
        }
        // The ends a run's supervisor polls never block it (SandboxPipes), set here, off the run's
        // path. Not the control pipe: a job too big for it is written blocking, on the run's thread.
        for fd in ours.dropFirst() { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        var spec = cs_sandbox_spec()
        spec.root_dir = UnsafePointer(layout.rootDir)
        spec.ro_paths = UnsafePointer(layout.roPaths)
        spec.links = UnsafePointer(layout.links)
        spec.masked_paths = UnsafePointer(layout.masked)
        spec.files = UnsafePointer(layout.files[slot])
        spec.hostname = UnsafePointer(layout.hostname)
        spec.home = UnsafePointer(layout.home)
        spec.uid = uid
        spec.gid = uid
        spec.tmpfs_bytes = UInt64(layout.config.tmpfsBytes)
        spec.tmpfs_inodes = UInt64(layout.config.tmpfsInodes)
        spec.join_netns_fd = joinNetns ?? 0
        spec.join_mntns_fd = joinBase ?? 0
        withUnsafeMutableBytes(of: &spec.cgroup_fds) { raw in
            let fds = raw.bindMemory(to: Int32.self)
            for (i, fd) in cgroupFDs.enumerated() { fds[i] = fd }
        }
        spec.n_cgroup_fds = Int32(cgroupFDs.count)
        (spec.control_fd, spec.report_fd, spec.status_fd) = (theirs[0], theirs[1], theirs[2])
        (spec.stdin_fd, spec.stdout_fd, spec.stderr_fd) = (theirs[3], theirs[4], theirs[5])

        let prestartArgv = prestart.map { SandboxLayout.cArray($0.argv) }
        let prestartEnv = prestart.map { SandboxLayout.cArray($0.env) }
        defer { [prestartArgv, prestartEnv].forEach { $0.map(SandboxLayout.freeCArray) } }
        spec.prestart_argv = prestartArgv.map { UnsafePointer($0) }
        spec.prestart_env = prestartEnv.map { UnsafePointer($0) }
        let prestartFile = prestart?.launcherFile.flatMap { strdup($0) }
        defer { prestartFile.map { free($0) } }
        spec.prestart_file = prestartFile.map { UnsafePointer($0) }
        // The job's limit is not known yet: the daemon's maximum (the exact CPU time is the cgroup's).
        spec.prestart_rlimit_cpu_s = UInt64(maxCPUMs / 1000 + 2)
        spec.prestart_rlimit_fsize = UInt64(layout.config.fileSizeBytes)
        spec.prestart_rlimit_nofile = UInt64(layout.config.openFiles)

        // Through a zygote if there is one: the language's own forks the pre-started interpreter,
        // another (the plain spawner) clones an init that execs the launcher, as one the daemon
        // clones itself would (at the cost of a copy of the daemon's page tables: ~2 ms of CPU).
        let pid: pid_t
        var prestarted = prestart?.language
        switch zygote?.spawn(&spec, forkInterpreter: prestart != nil && zygote?.spec == prestart?.interpreter) {
        case .sandbox(let p)?:
            pid = p
        case .unknown(let why)?:
            // An init may have been cloned with these fds (the zygote is dead now, so no other
            // will be): none of them may serve another sandbox, and that init must go.
            killStrays(holding: theirs[0])
            for fd in ours { close(fd) }
            cgroup.killAll(timeoutMs: 5000)
            throw SandboxError(why)
        case .nothing(let why)?:
            logger?.warning("sandbox spawned the plain way", metadata: ["slot": "\(slot)", "why": "\(why)"])
            if prestart?.onlyAsZygote == true {  // its launcher is for a zygote's stdin only: nothing in advance
                (spec.prestart_argv, spec.prestart_env, prestarted) = (nil, nil, nil)
            }
            pid = cloneInit(&spec)
        case nil:
            pid = cloneInit(&spec)
        }
        if pid < 0 {
            let e = errno
            for fd in ours { close(fd) }
            throw SandboxError("clone() of the sandbox init failed", errno: e)
        }
        let instance = SandboxInstance(initPID: pid, cgroup: cgroup, limits: limits, fds: ours)
        instance.prestarted = prestarted
        do {
            try instance.awaitReady()
            instance.netns = open("/proc/\(pid)/ns/net", O_RDONLY | O_CLOEXEC)  // our child, not reaped: the pid is its
            if joinBase == nil { instance.builtBase = openBase(of: pid) }
        } catch {
            instance.destroy()
            throw error
        }
        return instance
    }

    /// The base mount namespace an init built, from the fd it holds until its job (CS_FD_BASE_MNTNS):
    /// nothing of the sandbox has run yet but trusted code, and it must be a mount namespace.
    private static func openBase(of pid: pid_t) -> Int32? {
        let fd = open("/proc/\(pid)/fd/\(CS_FD_BASE_MNTNS)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        let nsGetType: UInt = 0xb703  // NS_GET_NSTYPE
        if ioctl(fd, nsGetType) == 0x0002_0000 { return fd }  // CLONE_NEWNS
        close(fd)
        return nil
    }

    /// Hands the base mount namespace its init built on to the caller (the slot).
    func takeBuiltBase() -> Int32? {
        defer { builtBase = nil }
        return builtBase
    }

    /// Clones the init from the parent thread (see ParentThread: the init dies with the daemon).
    /// Returns its pid, or -1 with errno set.
    private static func cloneInit(_ spec: inout cs_sandbox_spec) -> pid_t {
        withUnsafeMutablePointer(to: &spec) { pointer in
            let p = UnsafeSendable(pointer)
            let (pid, err) = ParentThread.shared.run { () -> (pid_t, Int32) in
                let pid = cs_sandbox_spawn(p.value)
                return (pid, errno)
            }
            errno = err
            return pid
        }
    }

    /// Kills and reaps the daemon's children that hold `fd`'s pipe (by inode): an init the zygote
    /// cloned for a request it never answered. Only such an init holds that pipe for more than an
    /// instant: an init the daemon clones meanwhile holds all the daemon's fds until it closes
    /// them, but it has the daemon's command line, not the zygote's.
    static func killStrays(holding fd: Int32) {
        var pipe = stat()
        guard fstat(fd, &pipe) == 0 else { return }
        let target = "pipe:[\(pipe.st_ino)]", me = getpid()
        let ours = FileManager.default.contents(atPath: "/proc/self/cmdline")
        for child in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(child), parent(of: pid) == me,
                  FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") != ours,
                  let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { continue }
            let holds = fds.contains { f in
                var link = [CChar](repeating: 0, count: 64)
                let n = readlink("/proc/\(pid)/fd/\(f)", &link, link.count - 1)
                return n > 0 && String(decoding: link[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) == target
            }
            guard holds else { continue }
            Glibc.kill(pid, SIGKILL)
            while waitpid(pid, nil, 0) < 0 && errno == EINTR {}
        }
    }

    static func parent(of pid: pid_t) -> pid_t? {
        guard let stat = try? FileIO.read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? pid_t(fields[1]) : nil
    }

    private func awaitReady() throws {
        var pfd = pollfd(fd: report, events: Int16(POLLIN), revents: 0)
        let n = try sys("poll") { poll(&pfd, 1, 10_000) }
        guard n == 1 else { throw SandboxError("the sandbox init did not get ready within 10 s") }
        guard case .value(let record) = readReport() else { throw SandboxError("the sandbox init exited during setup") }
        if record.kind == Int32(CS_REPORT_READY.rawValue) { return }
        throw SandboxError("sandbox setup failed at step \"\(String(cString: cs_step_name(record.step)))\"", errno: record.err)
    }

    /// One record from the report pipe, nothing yet, or its end (EOF, an error, or a cut record:
    /// the init writes whole records, so a part is its death).
    func readReport() -> PipeRead<cs_report> {
        readRecord(cs_report.self, from: report)
    }

    /// Kills every process of the sandbox now, without waiting (a limit, the client gone): the
    /// cgroup's kill, and the init's death, which takes its pid namespace along.
    func kill() {
        cgroup.killAll(timeoutMs: 0)
        killInit()
    }

    /// SIGKILL to the init: as its pid namespace's init, its death kills every process in it.
    /// Never once it is reaped: its pid may be another process's by then.
    func killInit() {
        if !reaped { Glibc.kill(initPID, SIGKILL) }
    }

    /// Kills everything in the sandbox, reaps the init, closes our pipe ends. Idempotent.
    /// (SandboxSlots.tearDown is the one caller, bar a spawn that failed.)
    func destroy() {
        // As the pid namespace's init, its death takes every process in it along: the kernel kills
        // them and the init's exit completes only when they are gone. The cgroup kill is the backstop.
        if !reaped {  // once reaped, the pid may belong to another process: never signal it again
            Glibc.kill(initPID, SIGKILL)
            var st: Int32 = 0
            while waitpid(initPID, &st, 0) < 0 && errno == EINTR {}
            reaped = true
        }
        cgroup.killAll(timeoutMs: 5000)
        for fd in [control, report, status, stdin, stdout, stderr, netns, builtBase ?? -1] where fd >= 0 { close(fd) }
        netns = -1
        builtBase = nil
        (control, report, status, stdin, stdout, stderr) = (-1, -1, -1, -1, -1, -1)
    }

    /// Sets a stage's limits and zeroes the memory peak, so the stage's numbers exclude what came
    /// before (already done if it was counted when it got ready, under these limits).
    func beginStage(limits wanted: LimitSet) throws {
        if !wanted.sameInCgroup(as: limits) {
            countedAtReady = nil
            try cgroup.apply(limits: wanted)
            limits = wanted
            cacheAtReady = cgroup.hostFileCache()  // a lower limit's write may have pushed some out
        }
        if countedAtReady == nil { try cgroup.resetCounters() }
    }

    /// What the cgroup holds before a stage, counted out of the stage's numbers (`cache`: the host
    /// files' page cache in `charged`, which the kernel may push out to make room for the stage).
    struct Counters {
        let charged: Int64, cpuNs: UInt64, oomKills: Int64, cache: Int64
    }

    /// Counted by `countAtReady`; used by the first stage only.
    private var countedAtReady: Counters?

    /// The host files' page cache charged when the sandbox got ready (read off the request's path;
    /// a waiting interpreter reads no more files).
    private var cacheAtReady: Int64 = 0

    /// Zeroes and reads the counters now that the sandbox is ready, off the request's path (a
    /// pwrite and three preads less on it), when nothing in it can change them until the job: only
    /// its init, blocked on the control pipe. Not with a pre-started interpreter (node's threads
    /// may work while it waits): only its page cache.
    func countAtReady() {
        cacheAtReady = cgroup.hostFileCache()
        guard prestarted == nil, (try? cgroup.resetCounters()) != nil else { return }
        countedAtReady = countNow()
    }

    /// The daemon wrote into the sandbox (a cached program placed): what is charged now is counted
    /// at the stage's start, not what was at ready (the peak was zeroed before the write either way).
    func chargedSinceReady() { countedAtReady = nil }

    /// The counters before a stage that starts now.
    func countersBeforeStage() -> Counters {
        defer { countedAtReady = nil }
        return countedAtReady ?? countNow()
    }

    private func countNow() -> Counters {
        Counters(charged: cgroup.memoryUsage(), cpuNs: cgroup.cpuNs(), oomKills: cgroup.oomKills(), cache: cacheAtReady)
    }

    /// A stage is told to start (the job's first, or the run after a compile).
    func stageStarted() { stagesStarted += 1 }

    /// A stage's status came: the init says whether a socket other than a unix one was let through
    /// in the sandbox so far (its watch of them: cs_install_socket_watch).
    func stageReported(_ record: cs_stage_status) {
        stagesReported += 1
        if record.network_touched != 0 { networkTouched = true }
    }

    /// The init said a socket other than a unix one may exist in the sandbox (CS_STAGE_NETWORK):
    /// its stages count the namespace's TCP queues from then on.
    private(set) var mayHoldSockets = false

    func networkAnnounced() {
        mayHoldSockets = true
        networkTouched = true
    }

    /// Every stage started in the sandbox reported, none touched the network namespace: the
    /// namespace holds nothing of the runs (the next init checks that no socket outlived them).
    var networkUntouched: Bool { stagesStarted == stagesReported && !networkTouched }

    /// Hands the network namespace's fd on to the caller (the slot, for its next sandbox).
    func takeNetns() -> Int32? {
        defer { netns = -1 }
        return netns >= 0 ? netns : nil
    }

    func closeControl() {
        if control >= 0 { close(control); control = -1 }
    }

    func closeStdin() {
        if stdin >= 0 { close(stdin); stdin = -1 }
    }
}
