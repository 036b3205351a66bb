import CodesandCore
import CodesandProtocol
import XCTest

@testable import CodesandLXD

/// What containers are made from, the host cgroup paths, the exec request, the [lxd] config.
final class LXDSpecTests: XCTestCase {
    func spec(image: String = "codesand-test") throws -> LXDInstanceSpec {
        var lxd = LXDConfig()
        lxd.image = image
        lxd.cpuAllowanceMs = 50
        let cfg = try CodesandConfig.defaults()
        return LXDInstanceSpec(lxd: lxd, home: "/home/sandbox", tmpfsBytes: 64 << 20, tmpfsInodes: 1000, limits: cfg.defaultLimits)
    }

    func test_containers_get_capped_tmpfs_no_swap_a_hard_cpu_quota_and_no_network() throws {
        let s = try spec()
        XCTAssertEqual(s.config["limits.cpu.allowance"], "50ms/100ms")
        XCTAssertEqual(s.config["limits.memory.swap"], "false")
        XCTAssertEqual(s.config["limits.memory"], "268435456")
        for dir in ["home/sandbox", "tmp", "var/tmp", "dev/shm"] {
            XCTAssertTrue(s.rawLXC.contains("lxc.mount.entry = tmpfs \(dir) tmpfs rw,nosuid,nodev,size=67108864,nr_inodes=1000"), dir)
        }
        XCTAssertTrue(s.rawLXC.contains("uid=1000,gid=1000,mode=0700"))
        let body = s.createBody(name: "c-0").objectValue!
        XCTAssertEqual(body["devices"], .object(["eth0": .object(["type": .string("none")])]))
        XCTAssertEqual(body["source"], .object(["type": .string("image"), "alias": .string("codesand-test")]))
        XCTAssertEqual(body["config"]?.objectValue?[LXDInstanceSpec.specKey], .string(s.digest))
    }

    func test_an_image_fingerprint_and_a_snapshot_source_are_told_apart_from_an_alias() throws {
        XCTAssertEqual(try spec(image: "3f2a9c0d1e4b").source.objectValue?["fingerprint"], .string("3f2a9c0d1e4b"))
        var s = try spec()
        s.lxd.image = ""
        s.lxd.source = "codesand/default"
        XCTAssertEqual(s.source, .object(["type": .string("copy"), "source": .string("codesand/default")]))
    }

    func test_the_digest_changes_with_what_the_container_is_made_from_only() throws {
        let a = try spec(), b = try spec()
        XCTAssertEqual(a.digest, b.digest)
        var c = try spec()
        c.tmpfsBytes = 32 << 20
        XCTAssertNotEqual(a.digest, c.digest)
        var d = try spec()
        d.lxd.image = "other"
        XCTAssertNotEqual(a.digest, d.digest)
    }

    func test_host_cgroup_paths_come_from_the_inits_cgroup_file() {
        let text = "9:name=systemd:/lxc.payload.c-0\n4:memory:/lxc.payload.c-0\n2:cpu,cpuacct:/lxc.payload.c-0\n0::/lxc.payload.c-0\n"
        let cg = LXDHostCgroup.parse(text, root: "/sys/fs/cgroup", unifiedRoot: "/sys/fs/cgroup/unified")
        XCTAssertEqual(cg.v1["memory"], "/sys/fs/cgroup/memory/lxc.payload.c-0")
        XCTAssertEqual(cg.v1["cpuacct"], "/sys/fs/cgroup/cpuacct/lxc.payload.c-0")
        XCTAssertNil(cg.v1["name=systemd"])
        XCTAssertEqual(cg.execDir, "/sys/fs/cgroup/unified/lxc.payload.c-0/.lxc")
    }

    func test_the_exec_request_waits_for_websockets_and_never_records_output() {
        let cmd = LXDExecCommand(argv: ["/bin/sh", "x"], env: ["A=1", "B=x=y"], uid: 1000, gid: 1000, cwd: "/home/sandbox")
        let body = cmd.requestBody.objectValue!
        XCTAssertEqual(body["wait-for-websocket"], .bool(true))
        XCTAssertEqual(body["record-output"], .bool(false))
        XCTAssertEqual(body["interactive"], .bool(false))
        XCTAssertEqual(body["environment"], .object(["A": .string("1"), "B": .string("x=y")]))
        XCTAssertEqual(body["user"], .int(1000))
    }

    func test_the_lxd_section_is_read_and_checked() throws {
        let cfg = try ConfigLoader.load(fileText: """
            [sandbox]
            backend = "lxd"
            [lxd]
            socket = "/tmp/x/unix.socket"
            image = "codesand-test"
            prefix = "cstest"
            members = ["m1", "m2"]
            """)
        XCTAssertEqual(cfg.sandbox.backend, "lxd")
        XCTAssertEqual(cfg.sandbox.lxd.socket, "/tmp/x/unix.socket")
        XCTAssertEqual(cfg.sandbox.lxd.prefix, "cstest")
        XCTAssertEqual(cfg.sandbox.lxd.members, ["m1", "m2"])
        XCTAssertEqual(try CodesandConfig.defaults().sandbox.backend, "native")
        for (text, key) in [("[sandbox]\nbackend = \"docker\"", "sandbox.backend"),
                            ("[sandbox]\nbackend = \"lxd\"", "lxd.image"),
                            ("[lxd]\nprefix = \"a/b\"", "lxd.prefix"),
                            ("[lxd]\nsource = \"nosnapshot\"", "lxd.source"),
                            ("[lxd]\nmembers = [\"m1\", \"\"]", "lxd.members"),
                            ("[lxd]\nbogus = 1", "lxd.bogus")] {
            XCTAssertThrowsError(try ConfigLoader.load(fileText: text), text) { error in
                XCTAssertEqual((error as? ConfigError)?.key, key, "\(error)")
            }
        }
    }
}
