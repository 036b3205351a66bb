import CSandbox
import Glibc
import XCTest

/// The seccomp program cs_install_seccomp installs, run here by a small classic-BPF interpreter:
/// its binary search must send every call number where the plain table says. (The kernel's own
/// check of the program is every sandbox's start; SeccompRuleTests, in SandboxTests, proves each
/// rule against the real kernel.)
final class SeccompProgramTests: XCTestCase {
    struct Call {
        var nr: UInt32
        var arch: UInt32 = Self.nativeArch
        var args: [UInt64] = [0, 0, 0, 0, 0, 0]
        #if arch(x86_64)
        static let nativeArch: UInt32 = 0xC000_003E  // AUDIT_ARCH_X86_64
        #else
        static let nativeArch: UInt32 = 0xC000_00B7  // AUDIT_ARCH_AARCH64
        #endif
    }

    static let allow: UInt32 = 0x7FFF_0000
    static let killProcess: UInt32 = 0x8000_0000
    static func errno(_ e: Int32) -> UInt32 { 0x0005_0000 | UInt32(e) }

    /// struct seccomp_data: nr, arch, instruction_pointer (8), args[6] (8 each).
    static func word(_ call: Call, at offset: UInt32) -> UInt32 {
        switch offset {
        case 0: return call.nr
        case 4: return call.arch
        case 16...63 where offset % 4 == 0:
            let arg = call.args[Int(offset - 16) / 8]
            return offset % 8 == 0 ? UInt32(truncatingIfNeeded: arg) : UInt32(truncatingIfNeeded: arg >> 32)
        default: return 0
        }
    }

    /// Runs the program on one call; fails the test on anything a seccomp program may not do.
    static func run(_ program: [sock_filter], _ call: Call) -> UInt32? {
        var a: UInt32 = 0, pc = 0, steps = 0
        while pc < program.count, steps < 10_000 {
            let i = program[pc]
            steps += 1
            switch Int32(i.code) {
            case BPF_LD | BPF_W | BPF_ABS: a = word(call, at: i.k); pc += 1
            case BPF_RET | BPF_K: return i.k
            case BPF_JMP | BPF_JA: pc += 1 + Int(i.k)
            case BPF_JMP | BPF_JEQ | BPF_K: pc += 1 + Int(a == i.k ? i.jt : i.jf)
            case BPF_JMP | BPF_JGE | BPF_K: pc += 1 + Int(a >= i.k ? i.jt : i.jf)
            case BPF_JMP | BPF_JSET | BPF_K: pc += 1 + Int(a & i.k != 0 ? i.jt : i.jf)
            default: return nil
            }
        }
        return nil
    }

    static func program(_ part: Int32 = Int32(CS_SECCOMP_ALL)) throws -> [sock_filter] {
        var out = [sock_filter](repeating: sock_filter(), count: Int(CS_SECCOMP_MAX_INSNS))
        let n = cs_build_seccomp(&out, out.count, part)
        guard n > 0 else { throw XCTSkip("no filter for this architecture") }
        return Array(out[0..<Int(n)])
    }

    static func table() -> [UInt32: (kind: Int32, err: Int32)] {
        var rules: [UInt32: (kind: Int32, err: Int32)] = [:]
        var i = 0
        var nr: UInt32 = 0, kind: Int32 = 0, err: Int32 = 0
        while cs_seccomp_rule(i, &nr, &kind, &err) == 1 {
            XCTAssertNil(rules[nr], "syscall \(nr) twice in the table")
            rules[nr] = (kind, err)
            i += 1
        }
        return rules
    }

    func test_every_call_number_gets_its_table_entry() throws {
        let program = try Self.program()
        let rules = Self.table()
        XCTAssertGreaterThan(rules.count, 60)
        // With all arguments 0, each argument block has a known answer.
        let blockAnswer: [Int32: UInt32] = [1: Self.allow, 2: Self.errno(EAFNOSUPPORT), 3: Self.allow, 4: Self.allow, 5: Self.allow]
        for nr in UInt32(0)..<2048 {
            let want: UInt32
            switch rules[nr] {
            case nil: want = Self.allow
            case let r? where r.kind == 0: want = Self.errno(r.err)
            case let r?: want = blockAnswer[r.kind]!
            }
            XCTAssertEqual(Self.run(program, Call(nr: nr)), want, "syscall \(nr)")
        }
        // The ends of the number space, the x32 bit, a foreign ABI.
        XCTAssertEqual(Self.run(program, Call(nr: 0x3FFF_FFFF)), Self.allow)
        XCTAssertEqual(Self.run(program, Call(nr: 0x4000_0000)), Self.errno(ENOSYS))
        XCTAssertEqual(Self.run(program, Call(nr: 0xFFFF_FFFF)), Self.errno(ENOSYS))
        XCTAssertEqual(Self.run(program, Call(nr: 1, arch: 0x4000_0003)), Self.killProcess)  // i386
        XCTAssertLessThan(program.count, 400)
    }

    /// The kernel's answer with two filters stacked: the strictest action (KILL_PROCESS, 0x8000…,
    /// is the smallest as a signed number), and of two alike the one installed last.
    static func stacked(_ first: UInt32?, _ last: UInt32?) -> UInt32? {
        guard let first, let last else { return nil }
        let f = Int32(bitPattern: first & 0xFFFF_0000), l = Int32(bitPattern: last & 0xFFFF_0000)
        return f < l ? first : last
    }

    /// The spawner's base with an init's setup rules on top answers every call as the whole filter.
    func test_the_base_and_the_setup_rules_together_are_the_whole_filter() throws {
        let whole = try Self.program(), base = try Self.program(Int32(CS_SECCOMP_BASE))
        let setup = try Self.program(Int32(CS_SECCOMP_SETUP))
        XCTAssertLessThan(setup.count, 40, "an init's own part stays small")
        var calls: [Call] = (UInt32(0)..<2048).map { Call(nr: $0) } + [Call(nr: 0x4000_0001), Call(nr: 3, arch: 0x4000_0003)]
        for nr in UInt32(0)..<512 {  // every call with arguments that the argument blocks tell apart
            for args: [UInt64] in [[0x1000_0000, 0, 0], [0x40, 1, 132], [40, 1, 0], [2, 1, 6], [16, 3, 15], [3, 1, 8],
                                   [0, 0x5412, 0], [0x0040_0000, 0, 0], [0xFFFF_FFFF, 0, 0]] {
                calls.append(Call(nr: nr, args: args + [0, 0, 0]))
            }
        }
        for call in calls {
            let want = Self.run(whole, call)
            XCTAssertNotNil(want)
            XCTAssertEqual(Self.stacked(Self.run(base, call), Self.run(setup, call)), want, "\(call)")
        }
        // The base alone lets an init build its sandbox: whatever the setup part refuses, the base
        // allows (an init builds its sandbox under the base, then adds the setup part), clone with
        // every namespace flag included.
        var refusedBySetup = 0
        for nr in UInt32(0)..<2048 {
            for flags: UInt64 in [0, 0x7E02_0000] where Self.run(setup, Call(nr: nr, args: [flags, 0, 0, 0, 0, 0])) != Self.allow {
                refusedBySetup += 1
                XCTAssertEqual(Self.run(base, Call(nr: nr, args: [flags, 0, 0, 0, 0, 0])), Self.allow, "syscall \(nr), flags \(flags)")
            }
        }
        XCTAssertGreaterThanOrEqual(refusedBySetup, 8, "mount, umount2, pivot_root, unshare, setns, mount_setattr, sethostname, clone")
    }

    #if arch(x86_64)
    enum Nr {
        static let read = 0, ioctl = 16, socket = 41, socketpair = 53, setsockopt = 54, clone = 56, personality = 135, mount = 165
    }

    func test_argument_checks() throws {
        let program = try Self.program()
        func answer(_ nr: Int, _ args: UInt64...) -> UInt32? {
            var call = Call(nr: UInt32(nr))
            for (i, a) in args.enumerated() { call.args[i] = a }
            return Self.run(program, call)
        }
        XCTAssertEqual(answer(Nr.clone, 0x1000_0000 /* CLONE_NEWUSER */), Self.errno(EPERM))
        XCTAssertEqual(answer(Nr.clone, 0x4000_0000 /* CLONE_NEWNET */ | 0xFFFF_FFFF_0000_0000), Self.errno(EPERM))
        XCTAssertEqual(answer(Nr.clone, 0x10900 /* CLONE_VM | CLONE_SIGHAND | CLONE_THREAD */), Self.allow)
        XCTAssertEqual(answer(Nr.socket, UInt64(AF_INET), 1, UInt64(IPPROTO_TCP)), Self.allow)
        XCTAssertEqual(answer(Nr.socket, UInt64(AF_INET6), 2, 0), Self.allow)
        XCTAssertEqual(answer(Nr.socket, UInt64(AF_INET), 1, 132), Self.errno(EPROTONOSUPPORT))  // SCTP
        XCTAssertEqual(answer(Nr.socket, UInt64(AF_UNIX), 1, 0), Self.allow)
        XCTAssertEqual(answer(Nr.socket, 40, 1, 0), Self.errno(EAFNOSUPPORT))  // AF_VSOCK
        XCTAssertEqual(answer(Nr.socket, UInt64(AF_NETLINK), 3, 0), Self.allow)  // NETLINK_ROUTE
        XCTAssertEqual(answer(Nr.socket, UInt64(AF_NETLINK), 3, 15), Self.errno(EAFNOSUPPORT))  // KOBJECT_UEVENT
        XCTAssertEqual(answer(Nr.socketpair, 40, 1, 0), Self.errno(EAFNOSUPPORT))
        XCTAssertEqual(answer(Nr.setsockopt, 3, UInt64(SOL_SOCKET), UInt64(SO_RCVBUF)), Self.errno(0))
        XCTAssertEqual(answer(Nr.setsockopt, 3, UInt64(SOL_SOCKET), UInt64(SO_SNDBUF)), Self.allow)
        XCTAssertEqual(answer(Nr.ioctl, 0, 0x5412), Self.errno(EPERM))  // TIOCSTI
        XCTAssertEqual(answer(Nr.ioctl, 0, 0x541C), Self.errno(EPERM))  // TIOCLINUX
        XCTAssertEqual(answer(Nr.ioctl, 0, 0x5401), Self.allow)  // TCGETS
        XCTAssertEqual(answer(Nr.personality, 0xFFFF_FFFF), Self.allow)
        XCTAssertEqual(answer(Nr.personality, 0x0040_0000), Self.errno(EPERM))  // READ_IMPLIES_EXEC
        XCTAssertEqual(answer(Nr.mount), Self.errno(EPERM))
        XCTAssertEqual(answer(435), Self.errno(ENOSYS))  // clone3
        XCTAssertEqual(answer(Nr.read), Self.allow)
    }
    #endif
}
