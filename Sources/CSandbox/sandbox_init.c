// The sandbox's init: everything between clone() and the program's execve().
//
// Why C: the daemon is multithreaded. In the child of a clone() only async-signal-safe code may run
// (another thread may have held malloc's or glibc's locks at the time of the clone), so this file
// uses raw syscalls, mmap instead of malloc, and no stdio. It reports failures as records on a
// pipe instead of printing them.
//
// The recipe (cs_sandbox_spawn → init_main):
//   fds → cgroups → private mounts → root tmpfs → read-only host dirs → /proc → /dev → tmpfs home,
//   /tmp, /dev/shm → hostname → loopback → pivot_root → READY; then wait for the job → write the
//   code file → fork the program (rlimits → caps → uid → no_new_privs → exec) → reap → status.
#define _GNU_SOURCE
#include "csandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// Fixed fd numbers inside the init, so nothing else of the daemon's survives into the sandbox.
enum { FD_CONTROL = 3, FD_REPORT, FD_STATUS, FD_STDIN, FD_STDOUT, FD_STDERR, FD_CGROUP0 };

static const char *const step_names[] = {
    "none", "fds", "cgroup attach", "private mounts", "root tmpfs", "read-only bind mount", "symlink", "synthetic files", "mount /proc",
    "mask /proc entries", "/dev", "tmpfs", "hostname", "loopback", "pivot_root", "read-only root", "read job",
    "invalid job", "write code file", "fork", "rlimits", "drop capabilities", "setuid", "no_new_privs", "seccomp", "chdir", "execve", "pre-started interpreter",
};

const char *cs_step_name(int step) {
    if (step < 0 || (size_t)step >= sizeof(step_names) / sizeof(step_names[0])) return "unknown";
    return step_names[step];
}

int cs_sigkill(void) { return SIGKILL; }
uint64_t cs_clone_flags_sandbox(void) {
    return CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
}
int cs_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

// ---- small async-signal-safe helpers ----

static void report(int kind, int step, int err) {
    struct cs_report r = {.kind = kind, .step = step, .err = err};
    ssize_t n;
    do { n = write(FD_REPORT, &r, sizeof r); } while (n < 0 && errno == EINTR);
}

__attribute__((noreturn)) static void fail(int step) {
    report(CS_REPORT_SETUP_FAILED, step, errno);
    _exit(126);
}

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        p += n; len -= (size_t)n;
    }
    return 0;
}

// Reads exactly len bytes; returns 0 on success, 1 on EOF before any byte, -1 otherwise.
static int read_all(int fd, void *buf, size_t len) {
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

static size_t str_len(const char *s) { size_t n = 0; while (s[n]) n++; return n; }

// Joins a and b into out (size PATH_MAX-ish); returns out or NULL if too long.
static char *path_join(char *out, size_t cap, const char *a, const char *b) {
    size_t la = str_len(a), lb = str_len(b);
    if (la + lb + 1 > cap) { errno = ENAMETOOLONG; return NULL; }
    memcpy(out, a, la);
    memcpy(out + la, b, lb + 1);
    return out;
}

// mkdir -p for a path under the fresh root tmpfs (all components are ours: no symlinks to follow).
static int mkdir_p(char *path, mode_t mode) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        int r = mkdir(path, mode);
        *p = '/';
        if (r < 0 && errno != EEXIST) return -1;
    }
    if (mkdir(path, mode) < 0 && errno != EEXIST) return -1;
    return 0;
}

// Makes a bind mount (and every mount below it) read-only, nosuid, nodev.
static int make_readonly(const char *path) {
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
    if (syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof attr) == 0) return 0;
    if (errno != ENOSYS) return -1;
    // Kernels before 5.12: only the top mount becomes read-only.
    return mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
}

static int bind_readonly(const char *src, const char *dst) {
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
    return make_readonly(dst);
}

static int mount_tmpfs(const char *dst, const char *mode, uint64_t bytes, uint64_t inodes, uid_t uid, gid_t gid) {
    // "size=%llu,nr_inodes=%llu,mode=%s,uid=%u,gid=%u" without snprintf (not async-signal-safe).
    char opts[160];
    char num[24];
    size_t o = 0;
    const char *parts[] = {"size=", NULL, ",nr_inodes=", NULL, ",mode=", mode, ",uid=", NULL, ",gid=", NULL};
    uint64_t values[] = {bytes, inodes, uid, gid};
    int vi = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        const char *s = parts[i];
        if (!s) {
            uint64_t v = values[vi++];
            int n = 0;
            char rev[24];
            do { rev[n++] = (char)('0' + v % 10); v /= 10; } while (v);
            for (int k = 0; k < n; k++) num[k] = rev[n - 1 - k];
            num[n] = 0;
            s = num;
        }
        size_t l = str_len(s);
        if (o + l + 1 > sizeof opts) { errno = E2BIG; return -1; }
        memcpy(opts + o, s, l);
        o += l;
    }
    opts[o] = 0;
    return mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, opts);
}

// ---- the recipe ----

// Moves the caller's fds to fixed numbers and closes everything else the daemon had open.
static void setup_fds(const struct cs_sandbox_spec *s) {
    int src[6 + CS_MAX_CGROUP_FDS] = {s->control_fd, s->report_fd, s->status_fd, s->stdin_fd, s->stdout_fd, s->stderr_fd};
    int n = 6 + s->n_cgroup_fds;
    int top = 0;
    for (int i = 0; i < s->n_cgroup_fds; i++) src[6 + i] = s->cgroup_fds[i];
    for (int i = 0; i < n; i++) if (src[i] > top) top = src[i];
    if (top < FD_CGROUP0 + n) top = FD_CGROUP0 + n;
    // First above every source and target, then down to the fixed numbers: no dup2 clobbers a source.
    int high[6 + CS_MAX_CGROUP_FDS];
    for (int i = 0; i < n; i++) {
        high[i] = fcntl(src[i], F_DUPFD_CLOEXEC, top + 1);
        if (high[i] < 0) _exit(126);  // cannot report: the report fd may be what failed
    }
    for (int i = 0; i < n; i++) {
        if (dup3(high[i], FD_CONTROL + i, O_CLOEXEC) < 0) _exit(126);
    }
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < 3; fd++) dup2(devnull, fd);  // the init's own stdio goes nowhere
    if (syscall(SYS_close_range, FD_CGROUP0 + s->n_cgroup_fds, ~0U, 0) < 0) {
        for (int fd = FD_CGROUP0 + s->n_cgroup_fds; fd < 65536; fd++) close(fd);
    }
}

static void join_cgroups(int count) {
    for (int i = 0; i < count; i++) {
        // "0" means the writing process; its pid in this new namespace would be meaningless to the cgroup.
        if (write(FD_CGROUP0 + i, "0", 1) != 1) fail(CS_STEP_CGROUP);
        close(FD_CGROUP0 + i);
    }
}

static void build_dev(const char *root) {
    char path[4096];
    if (!path_join(path, sizeof path, root, "/dev") || mkdir(path, 0755) < 0) fail(CS_STEP_DEV);
    static const char *const devices[] = {"null", "zero", "full", "random", "urandom", NULL};
    for (int i = 0; devices[i]; i++) {
        char host[64] = "/dev/";
        memcpy(host + 5, devices[i], str_len(devices[i]) + 1);
        char dst[4096];
        if (!path_join(dst, sizeof dst, path, host + 4)) fail(CS_STEP_DEV);
        int fd = open(dst, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd < 0) fail(CS_STEP_DEV);
        close(fd);
        // A bind mount keeps the host device usable although the tmpfs below is nodev.
        if (mount(host, dst, NULL, MS_BIND, NULL) < 0) fail(CS_STEP_DEV);
        if (mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NOEXEC, NULL) < 0) fail(CS_STEP_DEV);
    }
    static const char *const links[] = {"fd", "/proc/self/fd", "stdin", "/proc/self/fd/0", "stdout",
                                        "/proc/self/fd/1", "stderr", "/proc/self/fd/2", NULL};
    for (int i = 0; links[i]; i += 2) {
        char dst[4096], name[16] = "/";
        memcpy(name + 1, links[i], str_len(links[i]) + 1);
        if (!path_join(dst, sizeof dst, path, name) || symlink(links[i + 1], dst) < 0) fail(CS_STEP_DEV);
    }
}

static void build_proc(const char *root, const char *const *masked) {
    char path[4096];
    if (!path_join(path, sizeof path, root, "/proc") || mkdir(path, 0555) < 0) fail(CS_STEP_PROC);
    // A procfs of the new pid namespace: only the sandbox's own processes are visible.
    if (mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) fail(CS_STEP_PROC);
    for (int i = 0; masked && masked[i]; i++) {
        char dst[4096];
        struct stat st;
        if (!path_join(dst, sizeof dst, path, masked[i] + 5)) fail(CS_STEP_MASK);  // masked[i] starts with "/proc"
        if (lstat(dst, &st) < 0) continue;  // absent on this kernel
        if (S_ISDIR(st.st_mode)) {
            // Directories (e.g. /proc/sys) stay readable but become read-only.
            if (bind_readonly(dst, dst) < 0) fail(CS_STEP_MASK);
        } else if (mount("/dev/null", dst, NULL, MS_BIND, NULL) < 0) {
            fail(CS_STEP_MASK);
        }
    }
}

// Lays each synthetic file over its path: written to a scratch file in the root tmpfs, bound over
// the target (which exists in a read-only bind), and the scratch name unlinked (the mount keeps it).
static void lay_files(const char *root, const char *const *files) {
    for (int i = 0; files && files[i] && files[i + 1]; i += 2) {
        char dst[4096], scratch[4096];
        if (!path_join(dst, sizeof dst, root, files[i])) fail(CS_STEP_FILES);
        if (access(dst, F_OK) < 0) continue;  // nothing to hide or replace on this host
        if (!path_join(scratch, sizeof scratch, root, "/.scratch")) fail(CS_STEP_FILES);
        int fd = open(scratch, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0 || write_all(fd, files[i + 1], str_len(files[i + 1])) < 0) fail(CS_STEP_FILES);
        close(fd);
        if (mount(scratch, dst, NULL, MS_BIND, NULL) < 0) fail(CS_STEP_FILES);
        if (make_readonly(dst) < 0) fail(CS_STEP_FILES);
        if (unlink(scratch) < 0) fail(CS_STEP_FILES);
    }
}

static void bring_up_loopback(void) {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) fail(CS_STEP_LOOPBACK);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) fail(CS_STEP_LOOPBACK);
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) fail(CS_STEP_LOOPBACK);
    close(sock);
}

static void build_root(const struct cs_sandbox_spec *s) {
    const char *root = s->root_dir;
    char path[4096];
    // Nothing mounted from here on may propagate back to the host.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) fail(CS_STEP_MOUNT_PRIVATE);
    // The root itself: a tiny tmpfs holding only mount points and symlinks; made read-only at the end.
    if (mount_tmpfs(root, "0755", 1 << 20, 4096, 0, 0) < 0) fail(CS_STEP_ROOT_TMPFS);
    for (int i = 0; s->ro_paths && s->ro_paths[i] && s->ro_paths[i + 1]; i += 2) {
        if (!path_join(path, sizeof path, root, s->ro_paths[i + 1]) || mkdir_p(path, 0755) < 0) fail(CS_STEP_BIND_RO);
        if (bind_readonly(s->ro_paths[i], path) < 0) fail(CS_STEP_BIND_RO);
    }
    for (int i = 0; s->links && s->links[i] && s->links[i + 1]; i += 2) {
        char name[256] = "/";
        size_t l = str_len(s->links[i]);
        if (l + 2 > sizeof name) fail(CS_STEP_SYMLINK);
        memcpy(name + 1, s->links[i], l + 1);
        if (!path_join(path, sizeof path, root, name) || symlink(s->links[i + 1], path) < 0) fail(CS_STEP_SYMLINK);
    }
    lay_files(root, s->files);
    build_proc(root, s->masked_paths);
    build_dev(root);
    // Writable places: each its own size- and inode-capped tmpfs, so "disk full" stays inside.
    if (!path_join(path, sizeof path, root, "/dev/shm") || mkdir(path, 01777) < 0) fail(CS_STEP_TMPFS);
    if (mount_tmpfs(path, "1777", s->tmpfs_bytes, s->tmpfs_inodes, 0, 0) < 0) fail(CS_STEP_TMPFS);
    if (!path_join(path, sizeof path, root, "/tmp") || mkdir(path, 01777) < 0) fail(CS_STEP_TMPFS);
    if (mount_tmpfs(path, "1777", s->tmpfs_bytes, s->tmpfs_inodes, 0, 0) < 0) fail(CS_STEP_TMPFS);
    if (!path_join(path, sizeof path, root, "/var") || mkdir(path, 0755) < 0) fail(CS_STEP_TMPFS);
    if (!path_join(path, sizeof path, root, "/var/tmp") || mkdir(path, 01777) < 0) fail(CS_STEP_TMPFS);
    if (mount_tmpfs(path, "1777", s->tmpfs_bytes, s->tmpfs_inodes, 0, 0) < 0) fail(CS_STEP_TMPFS);
    if (!path_join(path, sizeof path, root, s->home) || mkdir_p(path, 0755) < 0) fail(CS_STEP_TMPFS);
    if (mount_tmpfs(path, "0700", s->tmpfs_bytes, s->tmpfs_inodes, s->uid, s->gid) < 0) fail(CS_STEP_TMPFS);

    if (sethostname(s->hostname, str_len(s->hostname)) < 0) fail(CS_STEP_HOSTNAME);
    bring_up_loopback();

    // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only ours.
    if (chdir(root) < 0) fail(CS_STEP_PIVOT_ROOT);
    if (syscall(SYS_pivot_root, ".", ".") < 0) fail(CS_STEP_PIVOT_ROOT);
    if (umount2(".", MNT_DETACH) < 0) fail(CS_STEP_PIVOT_ROOT);
    if (chdir("/") < 0) fail(CS_STEP_PIVOT_ROOT);
    if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0) fail(CS_STEP_ROOT_RDONLY);
}

// ---- the job ----

struct job {
    struct cs_job_header h;
    char **compile_argv;  // NULL without a compile stage
    char **argv;
    char **envp;
    const char *file_name;
};

static void read_job(struct job *job) {
    int r = read_all(FD_CONTROL, &job->h, sizeof job->h);
    if (r == 1) _exit(0);  // the daemon discarded this slot without a job
    if (r < 0) fail(CS_STEP_JOB_READ);
    struct cs_job_header *h = &job->h;
    if (h->magic != CS_JOB_MAGIC || h->strings_len == 0 || h->strings_len > CS_JOB_MAX_STRINGS || h->argc == 0 ||
        h->argc > 65536 || h->envc > 65536 || h->compile_argc > 65536) {
        errno = EINVAL;
        fail(CS_STEP_JOB_INVALID);
    }
    size_t count = (size_t)h->compile_argc + h->argc + h->envc + 1;
    size_t ptr_bytes = (count + (count + 3)) * sizeof(char *);  // the strings in order, then three NULL-ended lists
    char *mem = mmap(NULL, ptr_bytes + h->strings_len + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) fail(CS_STEP_JOB_READ);
    char **items = (char **)mem, **lists = items + count;
    char *strings = mem + ptr_bytes;
    if (read_all(FD_CONTROL, strings, h->strings_len) != 0) fail(CS_STEP_JOB_READ);
    strings[h->strings_len] = 0;
    size_t found = 0;
    char *p = strings;
    for (; p < strings + h->strings_len && found < count; p += str_len(p) + 1) items[found++] = p;
    // Exactly `count` strings filling exactly `strings_len` bytes: a stray NUL cannot shift them.
    if (found != count || p != strings + h->strings_len) { errno = EINVAL; fail(CS_STEP_JOB_INVALID); }
    size_t at = 0, from = 0;
    char **starts[3];
    uint32_t lengths[3] = {h->compile_argc, h->argc, h->envc};
    for (int l = 0; l < 3; l++) {
        starts[l] = lists + at;
        for (uint32_t k = 0; k < lengths[l]; k++) lists[at++] = items[from++];
        lists[at++] = NULL;
    }
    job->compile_argv = h->compile_argc ? starts[0] : NULL;
    job->argv = starts[1];
    job->envp = starts[2];
    job->file_name = items[count - 1];
    for (const char *c = job->file_name; *c; c++) {
        if (*c == '/') { errno = EINVAL; fail(CS_STEP_JOB_INVALID); }
    }
}

// Copies the code from the control pipe into the fresh home tmpfs (nothing there to follow yet).
static void write_code_file(const struct cs_sandbox_spec *s, const struct job *job) {
    if (chdir(s->home) < 0) fail(CS_STEP_CODE_FILE);
    int fd = open(job->file_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) fail(CS_STEP_CODE_FILE);
    char buf[65536];
    uint64_t left = job->h.code_len;
    while (left > 0) {
        size_t chunk = left < sizeof buf ? (size_t)left : sizeof buf;
        if (read_all(FD_CONTROL, buf, chunk) != 0) fail(CS_STEP_JOB_READ);
        if (write_all(fd, buf, chunk) < 0) fail(CS_STEP_CODE_FILE);
        left -= chunk;
    }
    if (fchown(fd, s->uid, s->gid) < 0) fail(CS_STEP_CODE_FILE);
    close(fd);
}

static int drop_bounding_set(void) {
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) return -1;
    }
    return 0;
}

static int clear_capabilities(void) {
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    return (int)syscall(SYS_capset, &hdr, data);
}

static void set_rlimit(int resource, uint64_t value) {
    if (value == 0) return;
    struct rlimit rl = {.rlim_cur = value, .rlim_max = value};
    if (setrlimit(resource, &rl) < 0) fail(CS_STEP_RLIMIT);
}

struct exec_limits {
    uint64_t cpu_s, fsize, nofile;
};

// SIG_DFL by the raw syscall: glibc's signal() refuses its own signals 32 and 33, which may arrive
// ignored (posix_spawn leaves them so) and would stay ignored across execve.
static void set_default_disposition(int sig) {
    struct { void *handler; unsigned long flags; void *restorer; uint64_t mask; } dfl = {SIG_DFL, 0, NULL, 0};
    syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(uint64_t));
}

// The zygote's own name, which the init's fork gets back (the init renames itself).
static char zygote_name[16];

// Makes the calling process the program's: stdio, limits, identity, seccomp. Failures go on the
// report pipe. `stage` 0 (a compiler) gets /dev/null as stdin; `go_fd` >= 0 becomes fd 3 (a
// pre-started interpreter). `forked`: the program is a zygote's interpreter, not exec'd: it keeps
// the signal dispositions its runtime set up, gets its name back, and nothing closes the report
// pipe for it.
static void become_program(const struct cs_sandbox_spec *s, struct exec_limits limits, int32_t stage, int go_fd,
                           int forked) {
    // The compiler reads no stdin: the request's stdin is the program's alone.
    int in = stage == 0 ? open("/dev/null", O_RDONLY | O_CLOEXEC) : FD_STDIN;
    if (in < 0 || dup2(in, 0) < 0 || dup2(FD_STDOUT, 1) < 0 || dup2(FD_STDERR, 2) < 0) fail(CS_STEP_FDS);
    close(FD_STDIN); close(FD_STDOUT); close(FD_STDERR); close(FD_CONTROL); close(FD_STATUS);
    if (go_fd >= 0) {
        if (dup2(go_fd, 3) < 0) fail(CS_STEP_FDS);  // not close-on-exec: the interpreter reads its job there
        close(go_fd);
    }
    // The daemon ignores SIGPIPE and may block signals; a program must start with the defaults. A
    // forked interpreter keeps what its runtime set up at start, but for the real-time signals.
    for (int sig = forked ? 32 : 1; sig < 65; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) set_default_disposition(sig);
    }
    sigset_t none;
    sigemptyset(&none);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(uint64_t));
    setsid();
    set_rlimit(RLIMIT_CPU, limits.cpu_s);
    set_rlimit(RLIMIT_FSIZE, limits.fsize);
    set_rlimit(RLIMIT_NOFILE, limits.nofile);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);  // core files would fill the home tmpfs
    // The init is unkillable by the OOM killer (-1000); the program must be its first choice, not
    // exempt: reset it (and the floor the init's root write set) while still privileged.
    int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (adj < 0 || write(adj, "1000", 4) != 4) fail(CS_STEP_RLIMIT);
    close(adj);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) fail(CS_STEP_CAPS);
    if (drop_bounding_set() < 0) fail(CS_STEP_CAPS);
    // Raw syscalls: glibc's set*id broadcast to every thread, which this copy of the daemon does not have.
    if (syscall(SYS_setgroups, 0, NULL) < 0) fail(CS_STEP_SETUID);
    if (syscall(SYS_setresgid, s->gid, s->gid, s->gid) < 0) fail(CS_STEP_SETUID);
    if (syscall(SYS_setresuid, s->uid, s->uid, s->uid) < 0) fail(CS_STEP_SETUID);
    if (clear_capabilities() < 0) fail(CS_STEP_CAPS);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail(CS_STEP_NO_NEW_PRIVS);
    if (chdir(s->home) < 0) fail(CS_STEP_CHDIR);
    if (forked) {
        // What an exec would do: core dumps and /proc/self owned by the process again (setresuid
        // cleared that), the report pipe closed (below), and the zygote's name back.
        if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0) fail(CS_STEP_CAPS);
        prctl(PR_SET_NAME, zygote_name, 0, 0, 0);
    }
    if (cs_install_seccomp() < 0) fail(CS_STEP_SECCOMP);  // last: the filter also binds everything above
    if (forked) close(FD_REPORT);  // what execve's close-on-exec does for an exec'd program
}

__attribute__((noreturn)) static void exec_program(const struct cs_sandbox_spec *s, char *const *argv, char *const *envp,
                                                    struct exec_limits limits, int32_t stage, int go_fd) {
    become_program(s, limits, stage, go_fd, 0);
    execve(argv[0], argv, envp);
    report(CS_REPORT_EXEC_FAILED, CS_STEP_EXEC, errno);
    _exit(127);
}

static void on_backup_alarm(int sig) {
    (void)sig;
    // The daemon did not end this run in time (it may be gone): exiting kills the whole namespace.
    _exit(125);
}

// Starts the pre-started interpreter, if any: it waits on fd 3 for the argv of its one run.
// Returns its pid, or -1 when there is none; 0 in the interpreter itself when it is the init's
// caller forked (spec.prestart_fork: a zygote, see zygote.c), which returns from the spawn.
static pid_t start_prestart(const struct cs_sandbox_spec *s, int *go_fd) {
    if (!s->prestart_fork && (!s->prestart_argv || !s->prestart_argv[0])) return -1;
    int go[2];
    if (pipe2(go, O_CLOEXEC) < 0) fail(CS_STEP_PRESTART);
    // A forked interpreter goes on running with glibc: _Fork records its new thread id there (a raw
    // clone would leave the zygote's, and pthread_kill or robust mutexes on the main thread fail).
    pid_t child = s->prestart_fork ? _Fork() : (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (child < 0) fail(CS_STEP_PRESTART);
    if (child == 0) {
        close(go[1]);
        struct exec_limits limits = {s->prestart_rlimit_cpu_s, s->prestart_rlimit_fsize, s->prestart_rlimit_nofile};
        if (s->prestart_fork) {
            become_program(s, limits, 1, go[0], 1);
            return 0;
        }
        exec_program(s, (char *const *)s->prestart_argv, (char *const *)s->prestart_env, limits, 1, go[0]);
    }
    close(go[0]);
    *go_fd = go[1];
    return child;
}

static void drop_privileges_of_init(void) {
    close(FD_STDIN); close(FD_STDOUT); close(FD_STDERR); close(FD_CONTROL); close(FD_REPORT);
    drop_bounding_set();
    clear_capabilities();
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

// Forks the stage's program, reaps until it exits (orphans included), and reports its wait status.
// Before the last stage's fork the init keeps what it needs to fork again; after it, nothing.
static int32_t run_stage(const struct cs_sandbox_spec *s, const struct job *job, char **argv, int32_t stage, pid_t child) {
    if (child <= 0) {
        child = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if (child < 0) fail(CS_STEP_FORK);
        struct exec_limits limits = {job->h.rlimit_cpu_s, job->h.rlimit_fsize, job->h.rlimit_nofile};
        if (child == 0) exec_program(s, argv, job->envp, limits, stage, -1);
    }
    if (stage == 1) drop_privileges_of_init();  // the init only reaps and reports from here on
    struct cs_stage_status record = {.stage = stage, .wait_status = 0};
    for (;;) {
        int status = 0;
        pid_t pid = (pid_t)syscall(SYS_wait4, -1, &status, 0, NULL);
        if (pid == child) { record.wait_status = status; break; }
        if (pid < 0 && errno == ECHILD) break;
    }
    write_all(FD_STATUS, &record, sizeof record);
    return record.wait_status;
}

// Never returns in the init; returns 0 in a forked interpreter (spec.prestart_fork).
static int init_main(const struct cs_sandbox_spec *s) {
    umask(022);  // never the daemon's: the mount points and files made below must have their modes
    if (s->prestart_fork) prctl(PR_GET_NAME, zygote_name, 0, 0, 0);
    prctl(PR_SET_NAME, "codesand-init", 0, 0, 0);  // not the daemon thread's name, in ps inside and out
    setup_fds(s);
    join_cgroups(s->n_cgroup_fds);
    // Its own cgroup namespace, rooted at the slot's cgroup (made after joining it, so the host's
    // cgroup paths do not show in /proc/self/cgroup).
    if (unshare(CLONE_NEWCGROUP) < 0) fail(CS_STEP_CGROUP);
    // The OOM killer must pick the program, never the init that reports its status.
    int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (adj >= 0) { (void)!write(adj, "-1000", 5); close(adj); }
    build_root(s);
    int go_fd = -1;
    pid_t prestarted = start_prestart(s, &go_fd);
    if (prestarted == 0) return 0;  // the forked interpreter: back to its runtime, which reads fd 3
    report(CS_REPORT_READY, CS_STEP_NONE, 0);

    struct job job;
    read_job(&job);
    write_code_file(s, &job);
    if (chdir("/") < 0) fail(CS_STEP_CHDIR);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_backup_alarm;
    sigaction(SIGALRM, &sa, NULL);
    if (job.h.backup_wall_s) alarm(job.h.backup_wall_s);

    if (prestarted > 0 && (job.h.flags & CS_JOB_USE_PRESTART)) {
        // Hand the waiting interpreter its argv; it runs the file just written.
        for (char **a = job.argv; *a; a++) {
            if ((a != job.argv && write_all(go_fd, "", 1) < 0) || write_all(go_fd, *a, str_len(*a)) < 0) fail(CS_STEP_PRESTART);
        }
        close(go_fd);
        run_stage(s, &job, job.argv, 1, prestarted);
        _exit(0);
    }
    if (prestarted > 0) {  // a job for another language: the interpreter is not needed
        kill(prestarted, SIGKILL);
        close(go_fd);
        while (syscall(SYS_wait4, prestarted, NULL, 0, NULL) < 0 && errno == EINTR) {}
    }
    if (job.compile_argv) {
        int32_t st = run_stage(s, &job, job.compile_argv, 0, 0);
        char go = 0;
        // A failed compile, or the daemon's word, ends the sandbox here; 'r' goes on to the run.
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || read_all(FD_CONTROL, &go, 1) != 0 || go != CS_GO_RUN) _exit(0);
    }
    run_stage(s, &job, job.argv, 1, 0);
    // Exiting as the namespace's init makes the kernel kill everything the program left behind.
    _exit(0);
}

pid_t cs_sandbox_spawn_flags(const struct cs_sandbox_spec *spec, uint64_t extra_clone_flags) {
    if (spec->n_cgroup_fds < 0 || spec->n_cgroup_fds > CS_MAX_CGROUP_FDS) { errno = EINVAL; return -1; }
    // Raw clone with no new stack behaves like fork() but without glibc's atfork handlers and locks.
    long pid = syscall(SYS_clone, (unsigned long)(cs_clone_flags_sandbox() | extra_clone_flags | SIGCHLD), 0, 0, 0, 0);
    if (pid < 0) return -1;
    if (pid == 0) {
        if (init_main(spec) == 0) return 0;  // only a forked interpreter gets here
        _exit(126);
    }
    return (pid_t)pid;
}

pid_t cs_sandbox_spawn(const struct cs_sandbox_spec *spec) {
    if (spec->prestart_fork) { errno = EINVAL; return -1; }  // the daemon's copy must never run a program
    return cs_sandbox_spawn_flags(spec, 0);
}
