// The sandbox's init: everything between clone() and the program's execve().
//
// Why C: the daemon is multithreaded. In the child of a clone() only async-signal-safe code may run
// (another thread may have held malloc's or glibc's locks at the time of the clone), so this file
// uses raw syscalls, mmap instead of malloc, and no stdio. It reports failures as records on a
// pipe instead of printing them.
//
// The recipe (cs_sandbox_spawn → init_main):
//   fds → cgroups → network namespace (the slot's kept one, or new) → the slot's base root (kept, or
//   built: private mounts → root tmpfs → read-only host dirs → /dev → pivot_root) → a copy of it →
//   /proc → tmpfs home, /tmp, /dev/shm → hostname → loopback → socket watch → READY; then wait for
//   the job → write the code file → start the program (rlimits → caps → uid → no_new_privs → exec)
//   → reap → status.
#define _GNU_SOURCE
#include "sandbox_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <net/if.h>
#include <sched.h>
#include <poll.h>
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

// ---- the recipe ----

// Moves the caller's fds to fixed numbers and closes everything else the daemon had open.
static void setup_fds(const struct cs_sandbox_spec *s) {
    int src[8 + CS_MAX_CGROUP_FDS] = {s->control_fd, s->report_fd, s->status_fd, s->stdin_fd, s->stdout_fd, s->stderr_fd};
    int n = 6 + s->n_cgroup_fds;
    int top = 0;
    for (int i = 0; i < s->n_cgroup_fds; i++) src[6 + i] = s->cgroup_fds[i];
    if (cs_joins_netns(s)) src[n++] = s->join_netns_fd;
    if (cs_joins_mntns(s)) src[n++] = s->join_mntns_fd;
    for (int i = 0; i < n; i++) if (src[i] > top) top = src[i];
    if (top < FD_CGROUP0 + n) top = FD_CGROUP0 + n;
    // First above every source and target, then down to the fixed numbers: no dup2 clobbers a source.
    int high[8 + CS_MAX_CGROUP_FDS];
    for (int i = 0; i < n; i++) {
        high[i] = fcntl(src[i], F_DUPFD_CLOEXEC, top + 1);
        if (high[i] < 0) _exit(126);  // cannot report: the report fd may be what failed
    }
    for (int i = 0; i < n; i++) {
        if (dup3(high[i], FD_CONTROL + i, O_CLOEXEC) < 0) _exit(126);
    }
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < 3; fd++) dup2(devnull, fd);  // the init's own stdio goes nowhere
    if (syscall(SYS_close_range, FD_CONTROL + n, ~0U, 0) < 0) {
        for (int fd = FD_CONTROL + n; fd < 65536; fd++) close(fd);
    }
}

static void join_cgroups(int count) {
    for (int i = 0; i < count; i++) {
        // "0" means the writing process; its pid in this new namespace would be meaningless to the cgroup.
        if (write(FD_CGROUP0 + i, "0", 1) != 1) cs_fail(CS_STEP_CGROUP);
        close(FD_CGROUP0 + i);
    }
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
    int r = cs_read_all(FD_CONTROL, &job->h, sizeof job->h);
    if (r == 1) _exit(0);  // the daemon discarded this slot without a job
    if (r < 0) cs_fail(CS_STEP_JOB_READ);
    struct cs_job_header *h = &job->h;
    if (h->magic != CS_JOB_MAGIC || h->strings_len == 0 || h->strings_len > CS_JOB_MAX_STRINGS || h->argc == 0 ||
        h->argc > 65536 || h->envc > 65536 || h->compile_argc > 65536) {
        errno = EINVAL;
        cs_fail(CS_STEP_JOB_INVALID);
    }
    size_t count = (size_t)h->compile_argc + h->argc + h->envc + 1;
    size_t ptr_bytes = (count + (count + 3)) * sizeof(char *);  // the strings in order, then three NULL-ended lists
    char *mem = mmap(NULL, ptr_bytes + h->strings_len + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) cs_fail(CS_STEP_JOB_READ);
    char **items = (char **)mem, **lists = items + count;
    char *strings = mem + ptr_bytes;
    if (cs_read_all(FD_CONTROL, strings, h->strings_len) != 0) cs_fail(CS_STEP_JOB_READ);
    strings[h->strings_len] = 0;
    size_t found = 0;
    char *p = strings;
    for (; p < strings + h->strings_len && found < count; p += cs_str_len(p) + 1) items[found++] = p;
    // Exactly `count` strings filling exactly `strings_len` bytes: a stray NUL cannot shift them.
    if (found != count || p != strings + h->strings_len) { errno = EINVAL; cs_fail(CS_STEP_JOB_INVALID); }
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
        if (*c == '/') { errno = EINVAL; cs_fail(CS_STEP_JOB_INVALID); }
    }
}

// Copies the code from the control pipe into the fresh home tmpfs (nothing there to follow yet).
static void write_code_file(const struct cs_sandbox_spec *s, const struct job *job) {
    if (chdir(s->home) < 0) cs_fail(CS_STEP_CODE_FILE);
    int fd = open(job->file_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) cs_fail(CS_STEP_CODE_FILE);
    char buf[65536];
    uint64_t left = job->h.code_len;
    while (left > 0) {
        size_t chunk = left < sizeof buf ? (size_t)left : sizeof buf;
        if (cs_read_all(FD_CONTROL, buf, chunk) != 0) cs_fail(CS_STEP_JOB_READ);
        if (cs_write_all(fd, buf, chunk) < 0) cs_fail(CS_STEP_CODE_FILE);
        left -= chunk;
    }
    if (fchown(fd, s->uid, s->gid) < 0) cs_fail(CS_STEP_CODE_FILE);
    close(fd);
}

static void set_rlimit(int resource, uint64_t value) {
    if (value == 0) return;
    struct rlimit rl = {.rlim_cur = value, .rlim_max = value};
    if (setrlimit(resource, &rl) < 0) cs_fail(CS_STEP_RLIMIT);
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

// Set by become_ready: from then on the init's signal dispositions are the defaults every program
// it starts must have, and its children inherit them.
static int init_is_ready;
// Set by confine_init, before anything of a program is started: the filter and the empty bounding
// set, which every process of the sandbox (a pre-started interpreter too) inherits from the init.
static int init_is_confined;

// Rewrites the process's argument area, which /proc/PID/cmdline shows to every process of the
// sandbox: a clone of the daemon or of a zygote would show their host command lines (config and
// socket paths, the zygote library's path, the launcher). In place, as setproctitle does (moving
// the area with PR_SET_MM needs CAP_SYS_RESOURCE, which containers often withhold): the area is
// zeroed, `text` written at its start, and its last byte made non-zero, which tells the kernel to
// show the area up to the first NUL. The area's bounds are fields 48 and 49 of /proc/self/stat.
static void set_cmdline(const char *text) {
    char stat[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (n <= 0) return;
    stat[n] = 0;
    char *p = stat + n;
    while (p > stat && *p != ')') p--;  // the name (field 2) may hold spaces and parentheses
    uint64_t bounds[2] = {0, 0};
    for (int field = 2; *p && field < 49;) {
        if (*p++ != ' ') continue;
        field++;
        if (field < 48) continue;
        uint64_t v = 0;
        while (*p >= '0' && *p <= '9') v = v * 10 + (uint64_t)(*p++ - '0');
        bounds[field - 48] = v;
    }
    char *start = (char *)(uintptr_t)bounds[0], *end = (char *)(uintptr_t)bounds[1];
    if (!start || end < start + 3) return;
    size_t room = (size_t)(end - start) - 2, len = cs_str_len(text);
    memset(start, 0, (size_t)(end - start));
    memcpy(start, text, len < room ? len : room);
    end[-1] = ' ';
}

// Makes the calling process the program's: stdio, limits, identity, seccomp. Failures go on the
// report pipe. `stage` 0 (a compiler) gets /dev/null as stdin; `go_fd` >= 0 becomes fd 3 (a
// pre-started interpreter). `forked`: the program is a zygote's interpreter, not exec'd: it keeps
// the signal dispositions its runtime set up, gets its name back, and nothing closes the report
// pipe for it.
static void become_program(const struct cs_sandbox_spec *s, struct exec_limits limits, int32_t stage, int go_fd,
                           int forked) {
    // The compiler reads no stdin: the request's stdin is the program's alone.
    int in = stage == 0 ? open("/dev/null", O_RDONLY | O_CLOEXEC) : FD_STDIN;
    if (in < 0 || dup2(in, 0) < 0 || dup2(FD_STDOUT, 1) < 0 || dup2(FD_STDERR, 2) < 0) cs_fail(CS_STEP_FDS);
    close(FD_STDIN); close(FD_STDOUT); close(FD_STDERR); close(FD_CONTROL); close(FD_STATUS);
    // Never the program's: it could answer its own sockets' announcements (a forked interpreter
    // is not exec'd, which would close it). Read only: the start of a program shares the init's memory.
    if (cs_socket_watch >= 0) close(cs_socket_watch);
    close(CS_FD_BASE_MNTNS);
    if (go_fd >= 0) {
        if (dup2(go_fd, 3) < 0) cs_fail(CS_STEP_FDS);  // not close-on-exec: the interpreter reads its job there
        close(go_fd);
    }
    // The daemon ignores SIGPIPE and may block signals; a program must start with the defaults. A
    // forked interpreter keeps what its runtime set up at start, but for the real-time signals. An
    // init that is ready has reset its own already (become_ready): only its SIGALRM is left.
    if (init_is_ready) {
        set_default_disposition(SIGALRM);
        set_default_disposition(SIGCHLD);
    } else {
        for (int sig = forked ? 32 : 1; sig < 65; sig++) {
            if (sig != SIGKILL && sig != SIGSTOP) set_default_disposition(sig);
        }
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
    if (adj < 0 || write(adj, "1000", 4) != 4) cs_fail(CS_STEP_RLIMIT);
    close(adj);
    if (forked) set_cmdline(zygote_name);  // "python3", not the zygote's launcher and library path
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) cs_fail(CS_STEP_CAPS);
    if (!init_is_confined && cs_drop_bounding_set() < 0) cs_fail(CS_STEP_CAPS);
    // Raw syscalls: glibc's set*id broadcast to every thread, which this copy of the daemon does not have.
    if (syscall(SYS_setgroups, 0, NULL) < 0) cs_fail(CS_STEP_SETUID);
    if (syscall(SYS_setresgid, s->gid, s->gid, s->gid) < 0) cs_fail(CS_STEP_SETUID);
    if (syscall(SYS_setresuid, s->uid, s->uid, s->uid) < 0) cs_fail(CS_STEP_SETUID);
    if (cs_clear_capabilities() < 0) cs_fail(CS_STEP_CAPS);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) cs_fail(CS_STEP_NO_NEW_PRIVS);
    if (chdir(s->home) < 0) cs_fail(CS_STEP_CHDIR);
    if (forked) {
        // What an exec would do: core dumps and /proc/self owned by the process again (setresuid
        // cleared that), the report pipe closed (below), and the zygote's name back.
        if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0) cs_fail(CS_STEP_CAPS);
        prctl(PR_SET_NAME, zygote_name, 0, 0, 0);
    }
    // Last: the filter also binds everything above. A confined init's children have it already.
    if (!init_is_confined && cs_install_seccomp() < 0) cs_fail(CS_STEP_SECCOMP);
    if (forked) close(FD_REPORT);  // what execve's close-on-exec does for an exec'd program
}

// `file_fd` >= 0 becomes CS_FD_PRESTART_FILE (a pre-started interpreter's launcher file).
__attribute__((noreturn)) static void exec_program(const struct cs_sandbox_spec *s, char *const *argv, char *const *envp,
                                                    struct exec_limits limits, int32_t stage, int go_fd, int file_fd) {
    become_program(s, limits, stage, go_fd, 0);
    if (file_fd >= 0 && (dup2(file_fd, CS_FD_PRESTART_FILE) < 0 || close(file_fd) < 0)) {
        cs_report_record(CS_REPORT_EXEC_FAILED, CS_STEP_PRESTART, errno);
        _exit(127);
    }
    execve(argv[0], argv, envp);
    cs_report_record(CS_REPORT_EXEC_FAILED, CS_STEP_EXEC, errno);
    _exit(127);
}

static void on_backup_alarm(int sig) {
    (void)sig;
    // The daemon did not end this run in time (it may be gone): exiting kills the whole namespace.
    _exit(125);
}

// Zeroes the stack below this frame, where the init's recipe left host paths: a forked
// interpreter goes on running on this stack, and what is there is the snippet's to read.
__attribute__((noinline)) static void wipe_stack(void) {
    char dead[65536];
    explicit_bzero(dead, sizeof dead);
}

// The launcher's text as a file of this sandbox alone, for an interpreter that takes its launcher
// as a script (spec.prestart_file): a memfd, made in the interpreter's process before its exec,
// which no other sandbox sees and which ends with it. (A pipe could hold too little to be written
// before its reader starts.) The launcher closes it before the program runs.
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
static int launcher_file(const char *text) {
    // Never executable: a host with vm.memfd_noexec = 2 refuses any other memfd (kernels before
    // 6.3 do not know the flag: EINVAL, and their memfds are what they are).
    int fd = memfd_create("codesand-launcher", MFD_CLOEXEC | MFD_NOEXEC_SEAL);
    if (fd < 0 && errno == EINVAL) fd = memfd_create("codesand-launcher", MFD_CLOEXEC);
    if (fd < 0 || cs_write_all(fd, text, cs_str_len(text)) < 0 || lseek(fd, 0, SEEK_SET) != 0) {
        cs_report_record(CS_REPORT_EXEC_FAILED, CS_STEP_PRESTART, errno);  // as a failed exec would
        _exit(127);
    }
    return fd;
}

// Starts the pre-started interpreter, if any: it waits on fd 3 for the argv of its one run.
// Returns its pid, or -1 when there is none; 0 in the interpreter itself when it is the init's
// caller forked (spec.prestart_fork: a zygote, see zygote.c), which returns from the spawn.
static pid_t start_prestart(const struct cs_sandbox_spec *s, int *go_fd) {
    if (!s->prestart_fork && (!s->prestart_argv || !s->prestart_argv[0])) return -1;
    int go[2];
    if (pipe2(go, O_CLOEXEC) < 0) cs_fail(CS_STEP_PRESTART);
    // A forked interpreter goes on running with glibc: _Fork records its new thread id there (a raw
    // clone would leave the zygote's, and pthread_kill or robust mutexes on the main thread fail).
    pid_t child = s->prestart_fork ? _Fork() : (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (child < 0) cs_fail(CS_STEP_PRESTART);
    if (child == 0) {
        close(go[1]);
        struct exec_limits limits = {s->prestart_rlimit_cpu_s, s->prestart_rlimit_fsize, s->prestart_rlimit_nofile};
        if (s->prestart_fork) {
            become_program(s, limits, 1, go[0], 1);
            wipe_stack();
            return 0;
        }
        exec_program(s, (char *const *)s->prestart_argv, (char *const *)s->prestart_env, limits, 1, go[0],
                     s->prestart_file ? launcher_file(s->prestart_file) : -1);
    }
    close(go[0]);
    *go_fd = go[1];
    return child;
}

// The run is over and reported. The daemon kills this init (and, as the namespace's init, with it
// everything the program left behind) when it tears the sandbox down, after its reply: exiting
// now would put the namespaces' teardown (~0.3 ms of CPU) on the reply's path. If the program's
// leftovers still hold its output, the daemon kills the init at once. The backup alarm ends it
// should the daemon never come.
__attribute__((noreturn)) static void await_teardown(void) {
    for (;;) pause();
}

static void drop_privileges_of_init(void) {
    close(FD_STDIN); close(FD_STDOUT); close(FD_STDERR); close(FD_CONTROL); close(FD_REPORT);
    if (!init_is_confined) cs_drop_bounding_set();  // confine_init did
    cs_clear_capabilities();
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

// The program's start shares the init's memory until its execve (CLONE_VM | CLONE_VFORK, as
// posix_spawn does): a fork would copy the init's page tables — the init is a copy of a zygote's
// interpreter or of the daemon — only for the exec to throw them away, and every page both then
// write would be copied again. The child runs on this stack of its own, touches none of the init's
// data (become_program: its own fd table, signal dispositions, credentials; no allocation), and the
// init waits until the exec (or the child's exit) before it goes on.
static char program_stack[128 << 10] __attribute__((aligned(64)));

struct program_start {
    const struct cs_sandbox_spec *s;
    char *const *argv, *const *envp;
    struct exec_limits limits;
    int32_t stage;
};

static int program_main(void *arg) {
    const struct program_start *p = arg;
    exec_program(p->s, p->argv, p->envp, p->limits, p->stage, -1, -1);
}

// Starts the stage's program, reaps until it exits (orphans included), and reports its wait status.
// Before the last stage's start the init keeps what it needs to start another; after it, nothing.
static int32_t run_stage(const struct cs_sandbox_spec *s, const struct job *job, char **argv, int32_t stage, pid_t child) {
    if (child <= 0) {
        struct program_start start = {s, argv, job->envp, {job->h.rlimit_cpu_s, job->h.rlimit_fsize, job->h.rlimit_nofile}, stage};
        child = clone(program_main, program_stack + sizeof program_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &start);
        if (child < 0) cs_fail(CS_STEP_FORK);
    }
    if (stage == 1) drop_privileges_of_init();  // the init only reaps and reports from here on
    cs_announce_network();  // if touched already (no watch, an earlier stage)
    struct cs_stage_status record = {.stage = stage, .wait_status = 0};
    for (;;) {
        int status = 0;
        pid_t pid = (pid_t)syscall(SYS_wait4, -1, &status, cs_socket_watch >= 0 ? WNOHANG : 0, NULL);
        if (pid == child) { record.wait_status = status; break; }
        if (pid < 0 && errno == ECHILD) break;
        if (pid != 0) continue;  // an orphan reaped, or EINTR: look again
        cs_await_child_or_socket();
    }
    record.network_touched = cs_network_touched;
    cs_write_all(FD_STATUS, &record, sizeof record);
    return record.wait_status;
}

// What every process of the sandbox gets, done once in the init, once the sandbox is built and
// before anything of a program starts, instead of in each program's start (on the request's
// path): the seccomp filter (compiled by the kernel at each install, ~0.15 ms) and the empty
// capability bounding set, which every child inherits, a pre-started interpreter too (its fork
// or exec would otherwise install its own). From here on the init only starts the pre-started
// interpreter, reads the job, writes the code file, starts stages, reaps and reports: nothing the
// filter denies.
static void confine_init(void) {
    if (cs_drop_bounding_set() < 0) cs_fail(CS_STEP_CAPS);
    if (cs_install_seccomp() < 0) cs_fail(CS_STEP_SECCOMP);
    init_is_confined = 1;
}

// Default signal dispositions, done once before READY for every program the init starts later
// (not before a pre-started interpreter's fork: it keeps its runtime's).
static void become_ready(void) {
    for (int sig = 1; sig < 65; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) set_default_disposition(sig);  // as pid 1 it ignores them anyway
    }
    sigset_t none;
    sigemptyset(&none);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(uint64_t));
    init_is_ready = 1;
}

// Never returns in the init; returns 0 in a forked interpreter (spec.prestart_fork).
static int init_main(const struct cs_sandbox_spec *s) {
    // Dies with the daemon: its parent is the daemon's parent thread (for a zygote's clone too,
    // through CLONE_PARENT), which ends only with the daemon; as the pid namespace's init, its
    // death kills every process of the sandbox. (If the daemon died before this line, the init
    // finds the control pipe at EOF and exits at the job.)
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    umask(022);  // never the daemon's: the mount points and files made below must have their modes
    // The daemon's signal handlers (libdispatch's, which pass the signal on to a daemon thread) are
    // not for its copy. (A zygote's clone keeps its interpreter's dispositions, which its fork must have.)
    if (!s->prestart_fork) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
    }
    if (s->prestart_fork) prctl(PR_GET_NAME, zygote_name, 0, 0, 0);
    prctl(PR_SET_NAME, "codesand-init", 0, 0, 0);  // not the daemon thread's name, in ps inside and out
    setup_fds(s);
    // After the daemon's fds are closed: until then a clone of the daemon shows the daemon's
    // command line, which is how killStrays tells it from a zygote's unanswered clone.
    set_cmdline("codesand-init");
    join_cgroups(s->n_cgroup_fds);
    int fresh_network = cs_join_network(s);
    // Its own cgroup namespace, rooted at the slot's cgroup (made after joining it, so the host's
    // cgroup paths do not show in /proc/self/cgroup).
    if (unshare(CLONE_NEWCGROUP) < 0) cs_fail(CS_STEP_CGROUP);
    // The OOM killer must pick the program, never the init that reports its status.
    int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (adj >= 0) { (void)!write(adj, "-1000", 5); close(adj); }
    cs_enter_root(s, fresh_network);
    // From here on every socket but a unix one waits for this init's word (run_stage gives it);
    // whatever this sandbox starts inherits the watch. Without it, the namespace is never kept.
    cs_socket_watch = cs_install_socket_watch();
    if (cs_socket_watch < 0) cs_network_touched = 1;
    confine_init();
    int go_fd = -1;
    pid_t prestarted = start_prestart(s, &go_fd);
    if (prestarted == 0) return 0;  // the forked interpreter: back to its runtime, which reads fd 3
    become_ready();
    cs_report_record(CS_REPORT_READY, CS_STEP_NONE, 0);

    struct job job;
    read_job(&job);
    close(CS_FD_BASE_MNTNS);  // the daemon took its own before it sent the job
    write_code_file(s, &job);
    if (chdir("/") < 0) cs_fail(CS_STEP_CHDIR);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_backup_alarm;
    sigaction(SIGALRM, &sa, NULL);
    if (job.h.backup_wall_s) alarm(job.h.backup_wall_s);
    cs_watch_children();

    if (prestarted > 0 && (job.h.flags & CS_JOB_USE_PRESTART)) {
        // Hand the waiting interpreter its argv; it runs the file just written.
        for (char **a = job.argv; *a; a++) {
            if ((a != job.argv && cs_write_all(go_fd, "", 1) < 0) || cs_write_all(go_fd, *a, cs_str_len(*a)) < 0) cs_fail(CS_STEP_PRESTART);
        }
        close(go_fd);
        run_stage(s, &job, job.argv, 1, prestarted);
        await_teardown();
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
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || cs_read_all(FD_CONTROL, &go, 1) != 0 || go != CS_GO_RUN) _exit(0);
    }
    run_stage(s, &job, job.argv, 1, 0);
    await_teardown();
}

pid_t cs_sandbox_spawn_flags(const struct cs_sandbox_spec *spec, uint64_t extra_clone_flags) {
    if (spec->n_cgroup_fds < 0 || spec->n_cgroup_fds > CS_MAX_CGROUP_FDS) { errno = EINVAL; return -1; }
    // Raw clone with no new stack behaves like fork() but without glibc's atfork handlers and locks.
    uint64_t flags = cs_clone_flags_sandbox() | extra_clone_flags;
    if (cs_joins_netns(spec)) flags &= ~(uint64_t)CLONE_NEWNET;  // the init joins that one (join_network)
    if (cs_joins_mntns(spec)) flags &= ~(uint64_t)CLONE_NEWNS;   // and works in a copy of that one (build_root)
    long pid = syscall(SYS_clone, (unsigned long)(flags | SIGCHLD), 0, 0, 0, 0);
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

