// The sandboxed program's seccomp filter (seccomp_filter.c).
#ifndef CS_SECCOMP_H
#define CS_SECCOMP_H

/// Installs the sandbox's seccomp filter on the calling thread: a denylist of syscalls that fail
/// with EPERM (clone3: ENOSYS, so runtimes fall back to clone), everything else allowed; a foreign
/// ABI kills the process. Needs PR_SET_NO_NEW_PRIVS (or CAP_SYS_ADMIN) first. Async-signal-safe: meant
/// for the child of clone(), right before execve. Returns 0, or -1 with errno (ENOSYS on an
/// architecture other than x86_64 and aarch64, or a kernel without seccomp filters: EINVAL).
int cs_install_seccomp(void);

/// Installs the socket watch (a second filter: socket() and socketpair() of any family but AF_UNIX
/// wait for an answer on the returned listener fd, close-on-exec). Needs CAP_SYS_ADMIN or
/// no_new_privs. -1 with errno where the kernel has no listeners (before 5.0).
int cs_install_socket_watch(void);
/// Answers one pending call of the socket watch: it goes on as made. 0, or -1 with errno (ENOENT:
/// the caller died before the answer).
int cs_answer_socket_watch(int listener);

#endif
