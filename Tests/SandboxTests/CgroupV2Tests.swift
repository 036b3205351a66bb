import CodesandCore
import Foundation
import XCTest

@testable import CodesandLinux

/// cgroup v2: the file-level logic against a fake cgroup directory, and the kill path for real
/// under /sys/fs/cgroup/unified (on this hybrid host its core files work; controllers cannot be enabled).
final class CgroupV2Tests: XCTestCase {
    func fakeDir() throws -> String {
        let dir = NSTemporaryDirectory() + "cgv2-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        for f in ["memory.max", "memory.swap.max", "pids.max", "cpu.max", "memory.peak", "cgroup.procs"] {
            _ = FileManager.default.createFile(atPath: "\(dir)/\(f)", contents: Data())
        }
        return dir
    }

    func read(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    func test_limits_are_written_to_the_v2_files() throws {
        let dir = try fakeDir()
        let slot = SlotCgroupV2(dir: dir, requireControllers: true)
        try slot.apply(limits: LimitSet(wallMs: 1, cpuMs: 1, memoryBytes: 64 << 20, pids: 32, outputBytes: 1, outputLines: 1))
        XCTAssertEqual(try read("\(dir)/memory.max"), "\(64 << 20)")
        XCTAssertEqual(try read("\(dir)/memory.swap.max"), "0")
        XCTAssertEqual(try read("\(dir)/pids.max"), "32")
        XCTAssertEqual(try read("\(dir)/cpu.max"), "100000 100000")
    }

    /// A slot writes only what its cgroup does not hold: the CPU quota and swap once, memory and
    /// pids when they change; time and output limits are no cgroup's. A failed write leaves that
    /// part unknown, so the next apply writes it again.
    func test_only_the_limits_that_change_are_written() throws {
        let dir = try fakeDir()
        let slot = SlotCgroupV2(dir: dir, requireControllers: true)
        let base = LimitSet(wallMs: 1, cpuMs: 1, memoryBytes: 64 << 20, pids: 32, outputBytes: 1, outputLines: 1)
        try slot.apply(limits: base)
        func mark() throws {
            for f in ["memory.max", "memory.swap.max", "pids.max", "cpu.max"] { try "x".write(toFile: "\(dir)/\(f)", atomically: false, encoding: .utf8) }
        }
        func written() throws -> [String] {
            try ["memory.max", "memory.swap.max", "pids.max", "cpu.max"].filter { try read("\(dir)/\($0)") != "x" }
        }
        try mark()
        var other = base
        (other.wallMs, other.cpuMs, other.outputBytes) = (9, 9, 9)
        try slot.apply(limits: other)
        XCTAssertEqual(try written(), [], "time and output limits are not the cgroup's")
        other.pids = 64
        try slot.apply(limits: other)
        XCTAssertEqual(try written(), ["pids.max"])
        XCTAssertEqual(try read("\(dir)/pids.max"), "64")
        try mark()
        other.memoryBytes = 128 << 20
        try slot.apply(limits: other)
        XCTAssertEqual(try written(), ["memory.max"])

        try FileManager.default.removeItem(atPath: "\(dir)/pids.max")
        XCTAssertThrowsError(try slot.apply(limits: base))
        _ = FileManager.default.createFile(atPath: "\(dir)/pids.max", contents: Data("x".utf8))
        try mark()
        try slot.apply(limits: base)
        XCTAssertEqual(try written(), ["pids.max"], "after the failed write, pids is written again; memory went through before it")
        XCTAssertEqual(try read("\(dir)/pids.max"), "32")
        XCTAssertTrue(base.sameInCgroup(as: other.with(memory: 64 << 20, pids: 32)))
        XCTAssertFalse(base.sameInCgroup(as: other))
    }

    /// A memory limit below what the cgroup holds (after its reclaim) is refused with EBUSY, as v1
    /// refuses it (v2 would take it and OOM-kill what it cannot reclaim), and nothing is written;
    /// without memory.reclaim (before 5.19) it is written and the kernel reclaims.
    func test_a_memory_limit_below_the_usage_is_refused_as_on_v1() throws {
        let dir = try fakeDir()
        try "\(50 << 20)\n".write(toFile: "\(dir)/memory.current", atomically: false, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: "\(dir)/memory.reclaim", contents: Data())  // reclaims nothing here
        let slot = SlotCgroupV2(dir: dir, requireControllers: true)
        XCTAssertThrowsError(try slot.apply(limits: LimitSet(wallMs: 1, cpuMs: 1, memoryBytes: 32 << 20, pids: 8, outputBytes: 1, outputLines: 1))) {
            XCTAssertEqual(($0 as? SystemCallError)?.errno, EBUSY, "\($0)")
        }
        XCTAssertEqual(try read("\(dir)/memory.max"), "", "not written")
        XCTAssertEqual(try read("\(dir)/memory.reclaim"), "\((50 << 20) - (32 << 20))", "asked to reclaim the excess first")
        try slot.apply(limits: LimitSet(wallMs: 1, cpuMs: 1, memoryBytes: 64 << 20, pids: 8, outputBytes: 1, outputLines: 1))
        XCTAssertEqual(try read("\(dir)/memory.max"), "\(64 << 20)")
        try FileManager.default.removeItem(atPath: "\(dir)/memory.reclaim")
        try slot.apply(limits: LimitSet(wallMs: 1, cpuMs: 1, memoryBytes: 32 << 20, pids: 8, outputBytes: 1, outputLines: 1))
        XCTAssertEqual(try read("\(dir)/memory.max"), "\(32 << 20)", "no memory.reclaim: written, the kernel's reclaim decides")
    }

    func test_a_missing_controller_file_is_an_error_when_controllers_are_required() throws {
        let dir = try fakeDir()
        try FileManager.default.removeItem(atPath: "\(dir)/pids.max")
        let slot = SlotCgroupV2(dir: dir, requireControllers: true)
        XCTAssertThrowsError(try slot.apply(limits: LimitSet(wallMs: 1, cpuMs: 1, memoryBytes: 1 << 30, pids: 8, outputBytes: 1, outputLines: 1)))
    }

    func test_counters_are_parsed_from_the_v2_files() throws {
        let dir = try fakeDir()
        try "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n".write(toFile: "\(dir)/cpu.stat", atomically: false, encoding: .utf8)
        try "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\noom_group_kill 0\n".write(toFile: "\(dir)/memory.events", atomically: false, encoding: .utf8)
        try "12345678\n".write(toFile: "\(dir)/memory.peak", atomically: false, encoding: .utf8)
        try "populated 0\nfrozen 0\n".write(toFile: "\(dir)/cgroup.events", atomically: false, encoding: .utf8)
        let slot = SlotCgroupV2(dir: dir, requireControllers: true)
        XCTAssertEqual(slot.cpuNs(), 1_500_000)
        XCTAssertEqual(slot.oomKills(), 2)
        XCTAssertEqual(slot.memoryPeak(), 12_345_678)
        XCTAssertTrue(slot.isEmpty())
        try "populated 1\nfrozen 0\n".write(toFile: "\(dir)/cgroup.events", atomically: false, encoding: .utf8)
        XCTAssertFalse(slot.isEmpty())
    }

    /// The real thing: a sandbox whose cgroup is a v2 cgroup, its processes killed by cgroup.kill.
    func test_cgroup_kill_empties_a_real_v2_cgroup_with_a_running_sandbox() throws {
        try requireRoot()
        let unified = "/sys/fs/cgroup/unified"
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "\(unified)/cgroup.procs"), "no cgroup2 mount at \(unified)")
        let name = "codesand-v2test-\(getpid())"
        let driver = CgroupV2Driver(slotsDir: "\(unified)/\(name)", requireControllers: false)
        let cgroup = try driver.slot(0)
        defer {
            cgroup.remove()
            rmdir("\(unified)/\(name)")
        }
        var config = try testConfig(pool: 1).sandbox
        config.cgroupName = name
        let layout = try SandboxLayout(config: config, poolSize: 1)
        let limits = try CodesandConfig.defaults().defaultLimits
        let sandbox = try SandboxInstance.spawn(layout: layout, slot: 0, uid: config.uidBase, cgroup: cgroup, limits: limits)
        let job = SandboxJob(argv: ["/bin/bash", "/home/sandbox/main.sh"], env: ["PATH=/usr/bin:/bin"], fileName: "main.sh",
                             code: Array("sleep 100 & sleep 100 & setsid sleep 100 & wait\n".utf8), stdin: [], limits: limits)
        try JobHandOver.write(job, to: sandbox, usesPrestart: false, rlimits: (1 << 20, 64))
        sandbox.closeControl()
        XCTAssertTrue(CgroupDetect.poll(timeoutMs: 2000) { cgroup.processes().count >= 5 }, "init, bash and three sleeps")
        XCTAssertTrue(cgroup.killAll(timeoutMs: 2000))
        XCTAssertTrue(cgroup.isEmpty())
        var status: Int32 = 0
        XCTAssertEqual(waitpid(sandbox.initPID, &status, 0), sandbox.initPID)
        XCTAssertEqual(status & 0x7f, SIGKILL, "the init died of cgroup.kill's SIGKILL")
    }

    /// A slot an earlier daemon left populated (it died mid-run): removeStale must kill what runs
    /// there, or rmdir fails with EBUSY and the processes stay for good.
    func test_remove_stale_kills_a_stale_slots_processes_then_removes_it() throws {
        try requireRoot()
        let unified = "/sys/fs/cgroup/unified"
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "\(unified)/cgroup.procs"), "no cgroup2 mount at \(unified)")
        let parent = "\(unified)/codesand-v2stale-\(getpid())"
        let driver = CgroupV2Driver(slotsDir: parent, requireControllers: false)
        let kept = try driver.slot(0)
        let stale = try driver.slot(3)
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["100"]
        try sleeper.run()
        defer {
            if sleeper.isRunning { kill(sleeper.processIdentifier, SIGKILL) }
            stale.remove()
            kept.remove()
            rmdir(parent)
        }
        try FileIO.write("\(parent)/slot-3/cgroup.procs", "\(sleeper.processIdentifier)")
        XCTAssertEqual(stale.processes(), [sleeper.processIdentifier])

        driver.removeStale(keeping: 1)
        XCTAssertTrue(CgroupDetect.poll(timeoutMs: 3000) { !sleeper.isRunning }, "the stale slot's process is killed")
        guard !sleeper.isRunning else { return }
        XCTAssertEqual(sleeper.terminationReason, .uncaughtSignal)
        XCTAssertEqual(sleeper.terminationStatus, SIGKILL)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(parent)/slot-3"), "the stale slot is removed")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(parent)/slot-0"), "slots below the pool size stay")
    }
}

private extension LimitSet {
    func with(memory: Int64, pids: Int64) -> LimitSet {
        var l = self
        (l.memoryBytes, l.pids) = (memory, pids)
        return l
    }
}
