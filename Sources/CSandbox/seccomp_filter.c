// The sandboxed program's seccomp filter: a list of syscalls that fail with EPERM.
//
// Why hand-built classic BPF instead of libseccomp: cs_install_seccomp runs in the child of a
// clone() of the multithreaded daemon, between setresuid and execve, where only async-signal-safe
// code may run (another thread may have held malloc's lock at the clone); libseccomp builds its
// filter with malloc. A static array needs no allocation, and no runtime library to ship.
//
// Why a denylist and not an allowlist: the sandbox hosts whole toolchains and runtimes (gcc, go,
// java, node, python), which between them use most of the syscall table, and new runtime versions
// start using new syscalls. Seccomp is not the main wall: no capabilities, an unprivileged uid,
// pid/mount/net/ipc/uts namespaces, cgroups and no_new_privs are. It shrinks the kernel attack
// surface behind those walls: rarely needed syscalls with a history of exploitable bugs, ones that
// reach other processes or the host, and the ways around the walls themselves (new namespaces).
//
// Answers: EPERM, so a program gets an ordinary error and can fall back; clone3 gets ENOSYS (see
// below); x32 syscalls get ENOSYS, as from a kernel without x32; a foreign ABI (i386 via int 0x80,
// 32-bit arm compat) kills the process, since no sandboxed program legitimately uses one.
//
// Async-signal-safe: no allocation, no locks, only the seccomp() / prctl() syscalls.
#define _GNU_SOURCE
#include "cs_seccomp.h"

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__aarch64__)
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#ifndef SECCOMP_RET_KILL_PROCESS
#define SECCOMP_RET_KILL_PROCESS 0x80000000U  // Linux 4.14; older kernels treat it as KILL_THREAD
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif

// Syscalls added since Linux 5.1 have one number on every architecture (424 on). Spelled out so a
// build against older kernel headers still blocks them when it runs on a newer kernel.
enum {
    NR_io_uring_setup = 425, NR_io_uring_enter = 426, NR_io_uring_register = 427, NR_open_tree = 428,
    NR_move_mount = 429, NR_fsopen = 430, NR_fsconfig = 431, NR_fsmount = 432, NR_fspick = 433,
    NR_clone3 = 435, NR_pidfd_getfd = 438, NR_mount_setattr = 442, NR_quotactl_fd = 443,
    NR_set_mempolicy_home_node = 450, NR_open_tree_attr = 467,
};

#if defined(__x86_64__)
#define ARCH_NATIVE AUDIT_ARCH_X86_64
#define X32_SYSCALL_BIT 0x40000000U
#else
#define ARCH_NATIVE AUDIT_ARCH_AARCH64
#endif

// The low 32 bits of a 64-bit syscall argument.
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#else
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)
#endif

#define LOAD(offset) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (offset))
#define LOAD_NR LOAD(offsetof(struct seccomp_data, nr))
#define RET(action) BPF_STMT(BPF_RET | BPF_K, (action))
#define ERRNO(e) (SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))
// if (A == k) goto +jt; else goto +jf  (offsets count the instructions skipped)
#define IF_EQ(k, jt, jf) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (jt), (jf))
// The accumulator holds the syscall number: fail that syscall with errno e.

// Namespace flags: a new namespace is a way around the sandbox's own (and CLONE_NEWUSER hands out
// capabilities inside it, the usual door to kernel bugs). In clone()'s flags 0x80 is part of the
// exit signal (always < 65), so including CLONE_NEWTIME there only turns an EINVAL into EPERM.
#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | \
                  CLONE_NEWCGROUP | CLONE_NEWTIME)

// What each syscall of the native ABI gets. Calls not listed are allowed; listed ones either fail
// with an errno, or go to a block that looks at their arguments. The filter built from this table
// (cs_build_seccomp) finds a call's entry by binary search: the kernel runs a filter once per call
// number when it is installed, to learn which calls it always allows (seccomp's action cache),
// and a list walked from the top made that ~450 times the whole list, for every sandbox.
enum rule_kind { RULE_DENY, RULE_CLONE, RULE_SOCKET, RULE_SETSOCKOPT, RULE_IOCTL, RULE_PERSONALITY };
struct rule {
    unsigned nr;
    unsigned char kind;
    unsigned short err;  // RULE_DENY's errno
};
#define DENY_RULE(nr, e) {(nr), RULE_DENY, (e)}

static const struct rule rules[] = {
    // clone with a namespace flag (flags are args[0] on x86_64 and aarch64; the kernel uses only
    // their low 32 bits). Other clones (fork, threads) pass.
    {__NR_clone, RULE_CLONE, 0},
    // clone3 passes its flags in memory, which BPF cannot read. ENOSYS, not EPERM: glibc (2.34+)
    // and other runtimes then fall back to clone, which is checked above; EPERM would make thread
    // creation fail.
    DENY_RULE(NR_clone3, ENOSYS),

    // Socket families (socket_block below), receive buffers (setsockopt_block), terminal input
    // (ioctl_block), execution domains (personality_block).
    {__NR_socket, RULE_SOCKET, 0},
    {__NR_socketpair, RULE_SOCKET, 0},
    {__NR_setsockopt, RULE_SETSOCKOPT, 0},
    {__NR_ioctl, RULE_IOCTL, 0},
    {__NR_personality, RULE_PERSONALITY, 0},

    // Reaching into other processes' memory and files: ptrace is also a large bug surface.
    DENY_RULE(__NR_ptrace, EPERM),
    DENY_RULE(__NR_process_vm_readv, EPERM),
    DENY_RULE(__NR_process_vm_writev, EPERM),
    DENY_RULE(__NR_kcmp, EPERM),
    DENY_RULE(NR_pidfd_getfd, EPERM),

    // Mounts and the root: the sandbox's file system view is fixed (and these need capabilities
    // it does not have, except where a user namespace would grant them).
    DENY_RULE(__NR_mount, EPERM),
    DENY_RULE(__NR_umount2, EPERM),
    DENY_RULE(__NR_pivot_root, EPERM),
    DENY_RULE(__NR_chroot, EPERM),
    DENY_RULE(NR_open_tree, EPERM),
    DENY_RULE(NR_open_tree_attr, EPERM),
    DENY_RULE(NR_move_mount, EPERM),
    DENY_RULE(NR_fsopen, EPERM),
    DENY_RULE(NR_fsconfig, EPERM),
    DENY_RULE(NR_fsmount, EPERM),
    DENY_RULE(NR_fspick, EPERM),
    DENY_RULE(NR_mount_setattr, EPERM),

    // Namespaces: leaving or making them (see NS_FLAGS).
    DENY_RULE(__NR_unshare, EPERM),
    DENY_RULE(__NR_setns, EPERM),

    // Large, bug-prone kernel subsystems that no snippet needs, each with a record of privilege
    // escalations: the kernel keyring, eBPF, perf events, io_uring, userfaultfd (makes kernel
    // races easy to win).
    DENY_RULE(__NR_keyctl, EPERM),
    DENY_RULE(__NR_add_key, EPERM),
    DENY_RULE(__NR_request_key, EPERM),
    DENY_RULE(__NR_bpf, EPERM),
    DENY_RULE(__NR_perf_event_open, EPERM),
    DENY_RULE(NR_io_uring_setup, EPERM),
    DENY_RULE(NR_io_uring_enter, EPERM),
    DENY_RULE(NR_io_uring_register, EPERM),
    DENY_RULE(__NR_userfaultfd, EPERM),

    // The host itself: kernels, modules, power, swap, accounting, quotas, the kernel log, the
    // clock, names. All need capabilities; refused before the kernel's permission code runs.
    DENY_RULE(__NR_kexec_load, EPERM),
    DENY_RULE(__NR_kexec_file_load, EPERM),
    DENY_RULE(__NR_init_module, EPERM),
    DENY_RULE(__NR_finit_module, EPERM),
    DENY_RULE(__NR_delete_module, EPERM),
    DENY_RULE(__NR_reboot, EPERM),
    DENY_RULE(__NR_swapon, EPERM),
    DENY_RULE(__NR_swapoff, EPERM),
    DENY_RULE(__NR_acct, EPERM),
    DENY_RULE(__NR_quotactl, EPERM),
    DENY_RULE(NR_quotactl_fd, EPERM),
    DENY_RULE(__NR_syslog, EPERM),
    DENY_RULE(__NR_settimeofday, EPERM),
    DENY_RULE(__NR_clock_settime, EPERM),
    DENY_RULE(__NR_clock_adjtime, EPERM),
    DENY_RULE(__NR_adjtimex, EPERM),
    DENY_RULE(__NR_sethostname, EPERM),
    DENY_RULE(__NR_setdomainname, EPERM),
    DENY_RULE(__NR_vhangup, EPERM),
    DENY_RULE(__NR_fanotify_init, EPERM),  // whole-mount file access monitoring

    // File handles open any file by inode, bypassing paths and so the mount view.
    DENY_RULE(__NR_open_by_handle_at, EPERM),
    DENY_RULE(__NR_name_to_handle_at, EPERM),

    // NUMA placement: rewrites other processes' memory placement, and mempolicy has had
    // use-after-free bugs; runtimes treat failure as "no NUMA".
    DENY_RULE(__NR_set_mempolicy, EPERM),
    DENY_RULE(__NR_mbind, EPERM),
    DENY_RULE(__NR_migrate_pages, EPERM),
    DENY_RULE(__NR_move_pages, EPERM),
    DENY_RULE(NR_set_mempolicy_home_node, EPERM),

    // Legacy syscalls, not on every architecture: port I/O, obsolete interfaces.
#ifdef __NR_iopl
    DENY_RULE(__NR_iopl, EPERM),
#endif
#ifdef __NR_ioperm
    DENY_RULE(__NR_ioperm, EPERM),
#endif
#ifdef __NR_lookup_dcookie
    DENY_RULE(__NR_lookup_dcookie, EPERM),
#endif
#ifdef __NR_nfsservctl
    DENY_RULE(__NR_nfsservctl, EPERM),
#endif
#ifdef __NR_uselib
    DENY_RULE(__NR_uselib, EPERM),
#endif
#ifdef __NR_sysfs
    DENY_RULE(__NR_sysfs, EPERM),
#endif
#ifdef __NR__sysctl
    DENY_RULE(__NR__sysctl, EPERM),
#endif
#ifdef __NR_ustat
    DENY_RULE(__NR_ustat, EPERM),
#endif
};
#define N_RULES (sizeof rules / sizeof rules[0])

// What a sandbox's init calls itself while it builds the sandbox, before its program starts.
// The plain spawner installs the rest once, for itself (cs_install_seccomp_base): every init it
// clones inherits that filter (filters are shared, never copied), and adds only these rules
// (cs_install_seccomp). A filter costs its installer the kernel's compilation and a run of it
// per call number (its action cache): for the whole table, ~0.1 ms of each sandbox's start.
static int is_setup_call(unsigned nr) {
    return nr == __NR_clone || nr == __NR_unshare || nr == __NR_setns || nr == __NR_mount || nr == __NR_umount2 ||
           nr == __NR_pivot_root || nr == NR_mount_setattr || nr == __NR_sethostname;
}

// 1 in a process whose filter already holds every rule but the setup calls' (the spawner, and
// the inits it clones: they are copies of it and share its filter). Checked against the kernel's
// word before it is believed (cs_install_seccomp).
static int base_installed = 0;

// Every call starts here: the architecture (syscall numbers mean different things under another
// ABI, so every check would be wrong for it), then the number.
static const struct sock_filter prologue[] = {
    LOAD(offsetof(struct seccomp_data, arch)),
    IF_EQ(ARCH_NATIVE, 1, 0),
    RET(SECCOMP_RET_KILL_PROCESS),
    LOAD_NR,
#ifdef X32_SYSCALL_BIT
    // The x32 ABI shares AUDIT_ARCH_X86_64 but sets this bit in the number: refuse it wholesale.
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, X32_SYSCALL_BIT, 0, 1),
    RET(ERRNO(ENOSYS)),
#endif
};

static const struct sock_filter clone_block[] = {
    LOAD(ARG_LO(0)),
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NS_FLAGS, 0, 1),
    RET(ERRNO(EPERM)),
    RET(SECCOMP_RET_ALLOW),
};

// Socket families: only unix, inet, inet6 and netlink's route protocol (what `ip addr` and
// getifaddrs use). Every other family is a door out of the network namespace or into a rarely
// used kernel subsystem: vsock reaches the hypervisor, NETLINK_KOBJECT_UEVENT hears the host's
// device events, AF_ALG, AF_PACKET, bluetooth, tipc, rds... have had privilege-escalation bugs.
// EAFNOSUPPORT is what a kernel without the family answers, so programs fall back as usual.
// Within inet and inet6, only the default protocol, TCP, UDP, ICMP and ICMPv6: the others
// (SCTP, MPTCP, UDP-Lite, L2TP, SMC…) are rarely used subsystems that an unprivileged socket()
// can even load as modules; they get EPROTONOSUPPORT. (Domain and protocol are ints: the
// kernel sees their low 32 bits, as we do.)
static const struct sock_filter socket_block[] = {
    LOAD(ARG_LO(0)),
    IF_EQ(AF_UNIX, 13, 0),
    IF_EQ(AF_INET, 5, 0),
    IF_EQ(AF_INET6, 4, 0),
    IF_EQ(AF_NETLINK, 0, 11),
    LOAD(ARG_LO(2)),
    IF_EQ(NETLINK_ROUTE, 8, 0),
    RET(ERRNO(EAFNOSUPPORT)),
    LOAD(ARG_LO(2)),  // inet, inet6: the protocol
    IF_EQ(0, 5, 0),
    IF_EQ(IPPROTO_TCP, 4, 0),
    IF_EQ(IPPROTO_UDP, 3, 0),
    IF_EQ(IPPROTO_ICMP, 2, 0),
    IF_EQ(IPPROTO_ICMPV6, 1, 0),
    RET(ERRNO(EPROTONOSUPPORT)),
    RET(SECCOMP_RET_ALLOW),
    RET(ERRNO(EAFNOSUPPORT)),
};

// Receive buffer sizes are the sandbox's (its network namespace's tcp_rmem, set by the init):
// a socket's own SO_RCVBUF is what a connection waiting in a listener's backlog inherits, and
// such a connection is charged to no cgroup, so a larger one would let each hold megabytes on
// the host's account. Accepted and ignored (ERRNO(0) is a success that does nothing), as the
// kernel itself quietly clamps the value to rmem_max.
static const struct sock_filter setsockopt_block[] = {
    LOAD(ARG_LO(1)),
    IF_EQ(SOL_SOCKET, 0, 4),
    LOAD(ARG_LO(2)),
    IF_EQ(SO_RCVBUF, 1, 0),
    IF_EQ(SO_RCVBUFFORCE, 0, 1),
    RET(ERRNO(0)),
    RET(SECCOMP_RET_ALLOW),
};

// ioctl TIOCSTI pushes bytes into a terminal's input queue, TIOCLINUX can paste the console
// selection: either lets a program type commands into a shell that shares its terminal.
// (The command is an unsigned int: the kernel looks only at the low 32 bits, as we do.)
static const struct sock_filter ioctl_block[] = {
    LOAD(ARG_LO(1)),
    IF_EQ(TIOCSTI, 2, 0),
    IF_EQ(TIOCLINUX, 1, 0),
    RET(SECCOMP_RET_ALLOW),
    RET(ERRNO(EPERM)),
};

// personality: only PER_LINUX (0) and the 0xffffffff query. Flags such as READ_IMPLIES_EXEC
// (readable = executable), ADDR_NO_RANDOMIZE and MMAP_PAGE_ZERO weaken exploit mitigations and
// have a history of bugs. (An unsigned int too: the low 32 bits are what the kernel sees.)
static const struct sock_filter personality_block[] = {
    LOAD(ARG_LO(0)),
    IF_EQ(0, 2, 0),
    IF_EQ(0xffffffffU, 1, 0),
    RET(ERRNO(EPERM)),
    RET(SECCOMP_RET_ALLOW),
};

#define BLOCK(b) {(b), sizeof(b) / sizeof((b)[0])}
static const struct {
    const struct sock_filter *code;
    size_t len;
} blocks[] = {
    [RULE_CLONE] = BLOCK(clone_block), [RULE_SOCKET] = BLOCK(socket_block),
    [RULE_SETSOCKOPT] = BLOCK(setsockopt_block), [RULE_IOCTL] = BLOCK(ioctl_block),
    [RULE_PERSONALITY] = BLOCK(personality_block),
};
#define N_BLOCKS (sizeof blocks / sizeof blocks[0])

// A search leaf: up to this many entries compared one by one.
#define LEAF 3

// The filter's builder: rules sorted by number, the program written into `out`.
struct builder {
    struct rule sorted[N_RULES];
    struct sock_filter *out;
    size_t cap, len;
    // Where each leaf jumps to an argument block (JA, patched once the blocks are placed).
    size_t fixups[N_RULES];
    unsigned char fixup_kind[N_RULES];
    size_t n_fixups;
    int overflow;
};

static void emit(struct builder *b, struct sock_filter insn) {
    if (b->len < b->cap) b->out[b->len] = insn; else b->overflow = 1;
    b->len++;
}

// Instructions the search over sorted[lo, hi) takes.
static size_t tree_size(size_t lo, size_t hi) {
    if (hi - lo <= LEAF) return 2 * (hi - lo) + 1;
    size_t mid = lo + (hi - lo) / 2, left = tree_size(lo, mid);
    return 1 + (left > 255 ? 1 : 0) + left + tree_size(mid, hi);
}

// With the number in A: numbers ≥ sorted[mid] go right, the others left; a leaf compares each of
// its entries and allows what none of them is.
static void emit_tree(struct builder *b, size_t lo, size_t hi) {
    if (hi - lo <= LEAF) {
        for (size_t i = lo; i < hi; i++) {
            emit(b, (struct sock_filter)IF_EQ(b->sorted[i].nr, 0, 1));
            if (b->sorted[i].kind == RULE_DENY) {
                emit(b, (struct sock_filter)RET(ERRNO(b->sorted[i].err)));
            } else {
                b->fixups[b->n_fixups] = b->len;
                b->fixup_kind[b->n_fixups++] = b->sorted[i].kind;
                emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JA, 0, 0, 0));
            }
        }
        emit(b, (struct sock_filter)RET(SECCOMP_RET_ALLOW));
        return;
    }
    size_t mid = lo + (hi - lo) / 2, left = tree_size(lo, mid);
    if (left <= 255) {
        emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, b->sorted[mid].nr, (unsigned char)left, 0));
    } else {  // a conditional jump reaches 255 instructions: the long way round
        emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, b->sorted[mid].nr, 0, 1));
        emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JA, (unsigned)left, 0, 0));
    }
    emit_tree(b, lo, mid);
    emit_tree(b, mid, hi);
}

int cs_seccomp_rule(size_t i, unsigned *nr, int *kind, int *err) {
    if (i >= N_RULES) return 0;
    *nr = rules[i].nr;
    *kind = rules[i].kind;
    *err = rules[i].err;
    return 1;
}

int cs_build_seccomp(struct sock_filter *out, size_t cap, int part) {
    struct builder b;
    memset(&b, 0, sizeof b);
    b.out = out;
    b.cap = cap;
    // Insertion sort: a few dozen entries, no allocation (this runs in a freshly cloned child).
    size_t n = 0;
    for (size_t i = 0; i < N_RULES; i++) {
        if (part == CS_SECCOMP_BASE && is_setup_call(rules[i].nr)) continue;
        if (part == CS_SECCOMP_SETUP && !is_setup_call(rules[i].nr)) continue;
        size_t j = n++;
        while (j > 0 && b.sorted[j - 1].nr > rules[i].nr) { b.sorted[j] = b.sorted[j - 1]; j--; }
        b.sorted[j] = rules[i];
    }
    for (size_t i = 1; i < n; i++) {
        if (b.sorted[i].nr == b.sorted[i - 1].nr) { errno = EINVAL; return -1; }  // one entry per call
    }
    for (size_t i = 0; i < sizeof prologue / sizeof prologue[0]; i++) emit(&b, prologue[i]);
    emit_tree(&b, 0, n);
    size_t at[N_BLOCKS];
    for (size_t k = 1; k < N_BLOCKS; k++) {
        int used = 0;
        for (size_t f = 0; f < b.n_fixups; f++) used |= b.fixup_kind[f] == k;
        if (!used) continue;  // a part of the filter without that call
        at[k] = b.len;
        for (size_t i = 0; i < blocks[k].len; i++) emit(&b, blocks[k].code[i]);
    }
    if (b.overflow || b.len > BPF_MAXINSNS) { errno = E2BIG; return -1; }
    for (size_t f = 0; f < b.n_fixups; f++) out[b.fixups[f]].k = (unsigned)(at[b.fixup_kind[f]] - b.fixups[f] - 1);
    return (int)b.len;
}

// The socket watch: a second, tiny filter whose listener the init holds. Every socket() or
// socketpair() of a family other than AF_UNIX that the main filter lets through waits for the init's
// answer, which marks the network namespace as touched before it lets the call go on. (Filters
// stack and the strictest answer wins: the main filter's EAFNOSUPPORT or EPROTONOSUPPORT beats
// SECCOMP_RET_USER_NOTIF, so only sockets that will really be made are announced.) Sockets are the
// only way a program without capabilities changes its network namespace (/proc/sys/net is
// read-only in the sandbox): a namespace whose runs made none, and which holds no socket when the
// next sandbox joins it, is as it was made.
static const struct sock_filter socket_watch_filter[] = {
    LOAD(offsetof(struct seccomp_data, arch)),
    IF_EQ(ARCH_NATIVE, 1, 0),
    RET(SECCOMP_RET_ALLOW),  // the main filter kills a foreign ABI
    LOAD_NR,
    IF_EQ(__NR_socket, 1, 0),
    IF_EQ(__NR_socketpair, 0, 3),
    LOAD(ARG_LO(0)),
    IF_EQ(AF_UNIX, 1, 0),
    RET(SECCOMP_RET_USER_NOTIF),
    RET(SECCOMP_RET_ALLOW),
};

// Whether the running kernel lets a notified call go on as made (SECCOMP_USER_NOTIF_FLAG_CONTINUE,
// Linux 5.5): listeners came in 5.0, and before 5.5 a call could only be answered, not continued.
static int kernel_continues_calls(void) {
    struct utsname u;
    if (uname(&u) < 0) return 0;
    unsigned major = 0, minor = 0;
    const char *p = u.release;
    while (*p >= '0' && *p <= '9') major = major * 10 + (unsigned)(*p++ - '0');
    if (*p++ != '.') return 0;
    while (*p >= '0' && *p <= '9') minor = minor * 10 + (unsigned)(*p++ - '0');
    return major > 5 || (major == 5 && minor >= 5);
}

int cs_install_socket_watch(void) {
#if defined(SYS_seccomp) && defined(SECCOMP_FILTER_FLAG_NEW_LISTENER)
    if (!kernel_continues_calls()) { errno = ENOSYS; return -1; }
    struct sock_fprog prog = {
        .len = (unsigned short)(sizeof socket_watch_filter / sizeof socket_watch_filter[0]),
        .filter = (struct sock_filter *)socket_watch_filter,
    };
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int cs_answer_socket_watch(int listener) {
#if defined(SECCOMP_IOCTL_NOTIF_RECV) && defined(SECCOMP_USER_NOTIF_FLAG_CONTINUE)
    // Sized for this kernel's structures, which may be larger than the headers' (never smaller).
    union { struct seccomp_notif n; char room[512]; } req;
    union { struct seccomp_notif_resp r; char room[512]; } resp;
    memset(&req, 0, sizeof req);
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) return -1;  // ENOENT: the caller died meanwhile
    memset(&resp, 0, sizeof resp);
    resp.r.id = req.n.id;
    resp.r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;  // the kernel goes on with the call as it was made
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0 || errno == ENOENT) return 0;
    // Never leave the caller waiting: if the call cannot go on, it fails as without the family.
    int err = errno;
    resp.r.flags = 0;
    resp.r.error = -EAFNOSUPPORT;
    ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    errno = err;
    return -1;
#else
    (void)listener;
    errno = ENOSYS;
    return -1;
#endif
}

static int install(int part, unsigned flags) {
    struct sock_filter filter[CS_SECCOMP_MAX_INSNS];
    int len = cs_build_seccomp(filter, CS_SECCOMP_MAX_INSNS, part);
    if (len < 0) return -1;
    struct sock_fprog prog = {.len = (unsigned short)len, .filter = filter};
#ifdef SYS_seccomp
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog) == 0) return 0;
    if (errno != ENOSYS) return -1;
#endif
    // Kernels before 3.17 have no seccomp() syscall (nor TSYNC: the spawner's one thread is all).
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0 ? 0 : -1;
}

int cs_install_seccomp(void) {
    // The base must really be there: a filter in place (mode 2) in a copy of the spawner.
    int base = base_installed && prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2;
    return install(base ? CS_SECCOMP_SETUP : CS_SECCOMP_ALL, 0);
}

int cs_install_seccomp_base(void) {
    // TSYNC: on every thread of the spawner (it has one; should it ever have more, the inits it
    // clones from any of them still inherit the base), or on none.
    if (install(CS_SECCOMP_BASE, SECCOMP_FILTER_FLAG_TSYNC) < 0) return -1;
    base_installed = 1;
    return 0;
}

#else  // neither x86_64 nor aarch64

// No filter is written for this architecture: report it instead of failing the build.
int cs_seccomp_rule(size_t i, unsigned *nr, int *kind, int *err) {
    (void)i, (void)nr, (void)kind, (void)err;
    return 0;
}

int cs_build_seccomp(struct sock_filter *out, size_t cap, int part) {
    (void)out;
    (void)cap;
    (void)part;
    errno = ENOSYS;
    return -1;
}

int cs_install_seccomp(void) {
    errno = ENOSYS;
    return -1;
}

int cs_install_seccomp_base(void) {
    errno = ENOSYS;
    return -1;
}

int cs_install_socket_watch(void) {
    errno = ENOSYS;
    return -1;
}

int cs_answer_socket_watch(int listener) {
    (void)listener;
    errno = ENOSYS;
    return -1;
}

#endif
