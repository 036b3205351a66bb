// What the init needs between clone() and execve() besides its recipe (sandbox_init.c): step
// names, failure reports to the daemon, async-signal-safe I/O and strings (no malloc, no stdio).
#define _GNU_SOURCE
#include "sandbox_internal.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
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

// The capabilities still in the bounding set, from /proc/self/status ("CapBnd:\t" and 16 hex
// digits); all 64 when it cannot be read.
static uint64_t bounding_set(void) {
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ~0ULL;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return ~0ULL;
    buf[n] = 0;
    static const char key[] = "\nCapBnd:\t";
    for (char *p = buf; *p; p++) {
        if (memcmp(p, key, sizeof key - 1) != 0) continue;
        uint64_t set = 0;
        int digits = 0;
        for (p += sizeof key - 1; digits < 16; p++, digits++) {
            int v = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
            if (v < 0) break;
            set = set << 4 | (uint64_t)v;
        }
        return digits == 16 ? set : ~0ULL;
    }
    return ~0ULL;
}

// Only what is still there: each PR_CAPBSET_DROP is a trip through the LSM hooks, and an init
// cloned by the plain spawner has none left (it dropped its own at start).
int cs_drop_bounding_set(void) {
    uint64_t set = bounding_set();
    for (int cap = 0; cap <= 63 && set; cap++, set >>= 1) {
        if ((set & 1) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) return -1;
    }
    return 0;
}

int cs_clear_capabilities(void) {
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    return (int)syscall(SYS_capset, &hdr, data);
}
