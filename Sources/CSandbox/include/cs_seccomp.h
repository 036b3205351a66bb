// The sandboxed program's seccomp filter (seccomp_filter.c).
#ifndef CS_SECCOMP_H
#define CS_SECCOMP_H

/// Installs the sandbox's seccomp filter on the calling thread: a denylist of syscalls that fail
/// with EPERM (clone3: ENOSYS, so runtimes fall back to clone), everything else allowed; a foreign
/// ABI kills the process. Needs PR_SET_NO_NEW_PRIVS (or CAP_SYS_ADMIN) first. Async-signal-safe: meant
/// for the child of clone(), right before execve. Returns 0, or -1 with errno (ENOSYS on an
/// architecture other than x86_64 and aarch64, or a kernel without seccomp filters: EINVAL).
int cs_install_seccomp(void);

/// For the plain spawner, once at its start: installs every rule but those of the calls an init
/// makes while it builds its sandbox (mount, unshare, setns, clone with namespace flags…). Its
/// inits then inherit that and cs_install_seccomp adds only the rest. 0, or -1 with errno (the
/// inits then install the whole filter each).
int cs_install_seccomp_base(void);

/// A program of the filter (all of it, the spawner's base, the rules of the init's setup calls), written into `out` (at most `cap` instructions):
/// its length, or -1 with errno (E2BIG: `cap` too small; ENOSYS: no filter for this
/// architecture). Exposed for the tests, which run it against every syscall number.
#include <stddef.h>
#include <linux/filter.h>
#define CS_SECCOMP_MAX_INSNS 512
enum { CS_SECCOMP_ALL = 0, CS_SECCOMP_BASE = 1, CS_SECCOMP_SETUP = 2 };
int cs_build_seccomp(struct sock_filter *out, size_t cap, int part);
/// Entry `i` of the filter's table (for the tests): the call's number, what it gets (0: fails
/// with `err`; 1 clone, 2 socket/socketpair, 3 setsockopt, 4 ioctl, 5 personality: a check of its
/// arguments). 0 past the end.
int cs_seccomp_rule(size_t i, unsigned *nr, int *kind, int *err);

/// Installs the socket watch (a second filter: socket() and socketpair() of any family but AF_UNIX
/// wait for an answer on the returned listener fd, close-on-exec). Needs CAP_SYS_ADMIN or
/// no_new_privs. -1 with errno where the kernel has no listeners (before 5.0).
int cs_install_socket_watch(void);
/// Answers one pending call of the socket watch: it goes on as made. 0, or -1 with errno (ENOENT:
/// the caller died before the answer).
int cs_answer_socket_watch(int listener);

#endif
