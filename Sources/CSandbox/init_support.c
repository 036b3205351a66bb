// What the init needs between clone() and execve() besides its recipe (sandbox_init.c): step
// names, failure reports to the daemon, async-signal-safe I/O and strings (no malloc, no stdio).
#define _GNU_SOURCE
#include "sandbox_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static const char *const step_names[] = {
    "none", "fds", "cgroup attach", "private mounts", "root tmpfs", "read-only bind mount", "symlink", "synthetic files", "mount /proc",
    "mask /proc entries", "/dev", "tmpfs", "hostname", "loopback", "pivot_root", "read-only root", "read job",
    "invalid job", "write code file", "fork", "rlimits", "drop capabilities", "setuid", "no_new_privs", "seccomp", "chdir", "execve", "pre-started interpreter",
    "join network namespace", "base mount namespace",
};

const char *cs_step_name(int step) {
    if (step < 0 || (size_t)step >= sizeof(step_names) / sizeof(step_names[0])) return "unknown";
    return step_names[step];
}

uint64_t cs_clone_flags_sandbox(void) {
    return CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
}

void cs_report_record(int kind, int step, int err) {
    struct cs_report r = {.kind = kind, .step = step, .err = err};
    ssize_t n;
    do { n = write(FD_REPORT, &r, sizeof r); } while (n < 0 && errno == EINTR);
}

void cs_fail(int step) {
    cs_report_record(CS_REPORT_SETUP_FAILED, step, errno);
    _exit(126);
}

int cs_write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        p += n; len -= (size_t)n;
    }
    return 0;
}

int cs_read_all(int fd, void *buf, size_t len) {
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        if (n == 0) { if (got == 0) return 1; errno = EPIPE; return -1; }
        got += (size_t)n;
    }
    return 0;
}

size_t cs_str_len(const char *s) { size_t n = 0; while (s[n]) n++; return n; }

char *cs_path_join(char *out, size_t cap, const char *a, const char *b) {
    size_t la = cs_str_len(a), lb = cs_str_len(b);
    if (la + lb + 1 > cap) { errno = ENAMETOOLONG; return NULL; }
    memcpy(out, a, la);
    memcpy(out + la, b, lb + 1);
    return out;
}

