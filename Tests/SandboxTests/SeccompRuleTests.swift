import CodesandCore
import CodesandProtocol
import Foundation
import XCTest

/// One probe per seccomp rule (Sources/CSandbox/seccomp_filter.c), each proven to be the rule's
/// doing: the same program runs in the sandbox and, without a filter, on the host as an
/// unprivileged user with no_new_privs. Every call is built so that the kernel itself answers
/// differently (success, EFAULT, EINVAL, EBADF, ENOENT) from the rule (EPERM, ENOSYS,
/// EAFNOSUPPORT), so removing a rule fails its probe, and a probe that stopped discriminating
/// fails too.
final class SeccompRuleTests: XCTestCase {
    /// What the sandbox must answer: errno per probe (0: allowed, and it works).
    static let expected: [String: Int32] = [
        "socket_vsock": EAFNOSUPPORT, "socket_uevent": EAFNOSUPPORT, "socketpair_vsock": EAFNOSUPPORT,
        "socket_netlink_route": 0, "socket_inet6": 0, "socketpair_unix": 0, "socket_tcp": 0, "socket_ping": 0,
        "socket_mptcp": EPROTONOSUPPORT, "socket_udplite6": EPROTONOSUPPORT, "so_rcvbuf_ignored": EPERM,
        "clone_newuser": EPERM, "clone3": ENOSYS, "unshare": EPERM, "setns": EPERM,
        "ioctl_tiocsti": EPERM, "personality": EPERM,
        "ptrace_traceme": EPERM, "process_vm_readv": EPERM, "pidfd_getfd": EPERM,
        "mount": EPERM, "umount2": EPERM, "chroot": EPERM,
        "keyctl": EPERM, "bpf": EPERM, "perf_event_open": EPERM, "io_uring_setup": EPERM, "userfaultfd": EPERM,
        "adjtimex": EPERM, "name_to_handle_at": EPERM, "set_mempolicy": EPERM,
    ]
    /// Allowed calls: the same answer in and out of the sandbox.
    static let allowed: Set<String> = ["socket_netlink_route", "socket_inet6", "socketpair_unix", "socket_tcp", "socket_ping"]

    static func parse(_ text: String) -> [String: Int32] {
        var out: [String: Int32] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 3, let e = Int32(f[2]) { out[String(f[0])] = e }
        }
        return out
    }

    func test_each_seccomp_rule_is_what_refuses_its_call() async throws {
        try requireRoot()
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/gcc"), "needs gcc (scripts/install-deps)")
        let host = try Self.runOnHostUnfiltered(Self.probeSource)
        let live = try await LiveService(pool: 1)
        defer { live.shutdown() }
        await live.waitUntilReady()
        let r = try await live.run("c", Self.probeSource)
        XCTAssertEqual(r.status, .ok, "\(r)")
        let inside = Self.parse(r.stdout)
        for (name, errno) in Self.expected.sorted(by: { $0.key < $1.key }) {
            XCTAssertEqual(inside[name], errno, "\(name) in the sandbox: \(r.stdout)")
            if Self.allowed.contains(name) {
                XCTAssertEqual(host[name], 0, "\(name) on the host: \(host)")
            } else {
                XCTAssertNotNil(host[name], "\(name) did not run on the host")
                XCTAssertNotEqual(host[name], errno, "\(name): the host's kernel answers the same without the rule, so the probe proves nothing")
            }
        }
    }

    #if arch(x86_64)
    func test_a_32_bit_syscall_kills_the_process() async throws {
        try requireRoot()
        let code = "#include <stdio.h>\nint main(void) { long r; __asm__ volatile(\"int $0x80\" : \"=a\"(r) : \"a\"(20)); printf(\"survived %ld\\n\", r); return 0; }"
        let live = try await LiveService(pool: 1)
        defer { live.shutdown() }
        await live.waitUntilReady()
        let r = try await live.run("c", code)
        XCTAssertEqual(r.status, .signal, "\(r)")
        XCTAssertEqual(r.signal, "SIGSYS", "\(r)")
        XCTAssertFalse(r.stdout.contains("survived"), "\(r)")
    }
    #endif

    /// Compiles `source` with gcc and runs it as nobody with no_new_privs and no seccomp filter.
    static func runOnHostUnfiltered(_ source: String) throws -> [String: Int32] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("seccomp-probe-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try source.write(toFile: dir + "/probe.c", atomically: true, encoding: .utf8)
        XCTAssertEqual(try output(["/usr/bin/gcc", "-o", dir + "/probe", dir + "/probe.c"]).status, 0)
        chmod(dir, 0o755)
        let run = try output(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs", dir + "/probe"])
        XCTAssertEqual(run.status, 0, run.text)
        return parse(run.text)
    }

    static func output(_ argv: [String]) throws -> (status: Int32, text: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static let probeSource = #"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timex.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef NETLINK_KOBJECT_UEVENT
#define NETLINK_KOBJECT_UEVENT 15
#endif

// One line per probe: "name rc errno". Each call is built so that the kernel, reached without the
// seccomp rule, answers differently (success, EFAULT, EINVAL, EBADF, ENOENT) from the rule.
static void probe(const char *name, long rc) {
    printf("%s %ld %d\n", name, rc < 0 ? -1L : 0L, rc < 0 ? errno : 0);
}

int main(void) {
    struct timex tx;
    memset(&tx, 0, sizeof tx);
    probe("socket_vsock", socket(AF_VSOCK, SOCK_STREAM, 0));
    probe("socket_uevent", socket(AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT));
    probe("socketpair_vsock", syscall(SYS_socketpair, AF_VSOCK, SOCK_STREAM, 0, NULL));
    probe("socket_netlink_route", socket(AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE));
    probe("socket_inet6", socket(AF_INET6, SOCK_DGRAM, 0));
    probe("socket_tcp", socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
    probe("socket_ping", socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) >= 0 || errno == EACCES ? 0 : -1);  // allowed: the kernel decides (ping_group_range)
    probe("socket_mptcp", socket(AF_INET, SOCK_STREAM, 262));   // IPPROTO_MPTCP
    probe("socket_udplite6", socket(AF_INET6, SOCK_DGRAM, 136)); // IPPROTO_UDPLITE
    // SO_RCVBUF is accepted and ignored: the buffer keeps its size ("EPERM" here means: unchanged).
    int tcp = socket(AF_INET, SOCK_STREAM, 0), big = 1 << 20, got = 0;
    socklen_t len = sizeof got;
    long set = setsockopt(tcp, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    getsockopt(tcp, SOL_SOCKET, SO_RCVBUF, &got, &len);
    errno = EPERM;
    probe("so_rcvbuf_ignored", set == 0 && got >= big ? 0 : -1);
    int pair[2];
    probe("socketpair_unix", socketpair(AF_UNIX, SOCK_STREAM, 0, pair));
    probe("clone_newuser", syscall(SYS_clone, CLONE_NEWUSER | CLONE_THREAD, 0, 0, 0, 0));
    probe("clone3", syscall(SYS_clone3, NULL, 0));
    probe("unshare", syscall(SYS_unshare, 1));
    probe("setns", syscall(SYS_setns, -1, 0));
    probe("ioctl_tiocsti", syscall(SYS_ioctl, -1, TIOCSTI, "x"));
    probe("personality", syscall(SYS_personality, READ_IMPLIES_EXEC));
    probe("ptrace_traceme", syscall(SYS_ptrace, 0, 0, 0, 0));
    probe("process_vm_readv", syscall(SYS_process_vm_readv, getpid(), NULL, 0, NULL, 0, 0));
    probe("pidfd_getfd", syscall(SYS_pidfd_getfd, -1, 0, 0));
    probe("mount", syscall(SYS_mount, "none", "/nonexistent-target", "tmpfs", 0, NULL));
    probe("umount2", syscall(SYS_umount2, "/", 0x80000000));
    probe("chroot", syscall(SYS_chroot, "/nonexistent-root"));
    probe("keyctl", syscall(SYS_keyctl, 0, -3, 0, 0, 0));
    probe("bpf", syscall(SYS_bpf, 0, (void *)1, 8));
    probe("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    probe("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
    probe("userfaultfd", syscall(SYS_userfaultfd, 1));
    probe("adjtimex", syscall(SYS_adjtimex, &tx));
    probe("name_to_handle_at", syscall(SYS_name_to_handle_at, AT_FDCWD, "/", NULL, NULL, 0));
    probe("set_mempolicy", syscall(SYS_set_mempolicy, 0, NULL, 0));
    return 0;
}
"""#
}
