// C shims for what Swift cannot do between clone() and execve().
// See sandbox_init.c for the recipe; every step there says why it exists.
#ifndef CSANDBOX_H
#define CSANDBOX_H

#include <spawn.h>
#include <stdint.h>
#include <sys/types.h>

#define CS_MAX_CGROUP_FDS 8

/// What a prepared sandbox looks like. All paths are host paths; all fds belong to the caller
/// and are left open in the caller (close the sandbox-side ends yourself after the spawn).
struct cs_sandbox_spec {
    const char *root_dir;            // an empty host directory; the new root is mounted on it (in the child's namespace only)
    const char *const *ro_paths;     // NULL-terminated pairs (host source, path inside): read-only bind mounts
    const char *const *links;        // NULL-terminated pairs (name, target): symlinks at the root, e.g. "bin" -> "usr/bin"
    const char *const *masked_paths; // NULL-terminated: /proc entries hidden under /dev/null or made read-only
    const char *const *files;        // NULL-terminated pairs (path, content): synthetic files laid over the read-only
                                     // binds, e.g. "/etc/passwd" without the host's accounts; "" content masks a file
    const char *hostname;
    const char *home;                // absolute path inside the sandbox, e.g. "/home/sandbox"
    uid_t uid;
    gid_t gid;
    uint64_t tmpfs_bytes;            // size cap of each writable tmpfs (home, /tmp, /var/tmp, /dev/shm)
    uint64_t tmpfs_inodes;           // inode cap of each writable tmpfs
    int cgroup_fds[CS_MAX_CGROUP_FDS]; // cgroup.procs files opened O_WRONLY by the caller
    int n_cgroup_fds;
    int control_fd;                  // read end: the job (struct cs_job_header + payload) arrives here
    int report_fd;                   // write end: struct cs_report records (ready / failure / exec failure)
    int status_fd;                   // write end: the main process's wait status (int32) once it exits
    int stdin_fd, stdout_fd, stderr_fd; // the program's stdio
    // Optional: an interpreter started in advance as the sandbox user, blocked reading fd 3. A job
    // with CS_JOB_USE_PRESTART hands it the program's argv ("path\0arg\0…") there; any other job
    // kills it and runs the plain way.
    const char *const *prestart_argv;   // NULL: none
    const char *const *prestart_env;
    // NULL, or a text the exec'd interpreter finds on fd CS_FD_PRESTART_FILE as a file of its own
    // (a memfd the init makes): its launcher as a script file, e.g. node's main /proc/self/fd/5.
    const char *prestart_file;
    uint64_t prestart_rlimit_cpu_s, prestart_rlimit_fsize, prestart_rlimit_nofile;
    // Non-zero: the pre-started interpreter is the spawning process itself, forked (a zygote's
    // interpreter, already initialised; see cs_zygote_serve) instead of prestart_argv exec'd.
    int prestart_fork;
    // > 2: the network namespace to join (the slot's, kept from its last sandbox) instead of a new
    // one; if sockets still live in it, the init makes a new one after all. 0: a new one.
    int join_netns_fd;
    // > 2: the slot's base mount namespace (its read-only root, built by an earlier sandbox of the
    // slot): the init works in a copy of it instead of building the root. 0: the init builds the
    // base and keeps an fd of it open at CS_FD_BASE_MNTNS until its job arrives, for the daemon.
    int join_mntns_fd;
};

/// In an init that built its slot's base mount namespace: an fd of that namespace, open until the
/// init has read its job (the daemon opens /proc/PID/fd/19 after READY).
#define CS_FD_BASE_MNTNS 19

/// In an exec'd pre-started interpreter with spec.prestart_file: that text, as a file.
#define CS_FD_PRESTART_FILE 5

/// Records on the report pipe. After READY, the pipe reaches EOF when the program was exec'd.
enum cs_report_kind { CS_REPORT_READY = 1, CS_REPORT_SETUP_FAILED = 2, CS_REPORT_EXEC_FAILED = 3 };

struct cs_report {
    int32_t kind;   // enum cs_report_kind
    int32_t step;   // enum cs_step: which step failed
    int32_t err;    // errno of that step
};

/// Steps of the recipe, for failure reports.
enum cs_step {
    CS_STEP_NONE = 0, CS_STEP_FDS, CS_STEP_CGROUP, CS_STEP_MOUNT_PRIVATE, CS_STEP_ROOT_TMPFS, CS_STEP_BIND_RO,
    CS_STEP_SYMLINK, CS_STEP_FILES, CS_STEP_PROC, CS_STEP_MASK, CS_STEP_DEV, CS_STEP_TMPFS, CS_STEP_HOSTNAME, CS_STEP_LOOPBACK,
    CS_STEP_PIVOT_ROOT, CS_STEP_ROOT_RDONLY, CS_STEP_JOB_READ, CS_STEP_JOB_INVALID, CS_STEP_CODE_FILE,
    CS_STEP_FORK, CS_STEP_RLIMIT, CS_STEP_CAPS, CS_STEP_SETUID, CS_STEP_NO_NEW_PRIVS, CS_STEP_SECCOMP, CS_STEP_CHDIR, CS_STEP_EXEC, CS_STEP_PRESTART,
    CS_STEP_NETNS, CS_STEP_MNTNS,
};

#define CS_JOB_MAGIC 0x31424a43u  /* "CJB1" */
#define CS_JOB_MAX_STRINGS (4u << 20)

/// The job, written by the daemon on the control pipe. Followed by `strings_len` bytes of
/// NUL-terminated strings (compile_argc compile argv elements, argc run argv elements, envc
/// environment entries, then the file name, relative to the home directory) and `code_len` bytes
/// of the file's content. With a compile stage, the init reports the compiler's status (stage 0)
/// and waits for one byte on the control pipe: 'r' runs the program, anything else (or EOF) ends.
struct cs_job_header {
    uint32_t magic;
    uint32_t argc;
    uint32_t envc;
    uint32_t strings_len;
    uint64_t code_len;
    uint64_t rlimit_cpu_s;       // RLIMIT_CPU per process, seconds (0 = unlimited)
    uint64_t rlimit_fsize;       // RLIMIT_FSIZE, bytes (0 = unlimited)
    uint64_t rlimit_nofile;      // RLIMIT_NOFILE
    uint32_t backup_wall_s;      // init kills everything after this many seconds, should the daemon be gone
    uint32_t compile_argc;       // 0: no compile stage
    uint32_t flags;              // CS_JOB_USE_PRESTART: argv goes to the pre-started interpreter
    uint32_t reserved;
};

enum { CS_JOB_USE_PRESTART = 1 };

/// A record on the status pipe that is no stage's status: from here on a socket other than a unix
/// one may exist in the sandbox (its network_touched is 1). Sent once per sandbox, when the first
/// such socket is announced, or at the first stage's start if the init cannot watch for them; the
/// daemon counts the namespace's TCP queues (SocketQueues) only from then on.
enum { CS_STAGE_NETWORK = -1 };

/// On the status pipe: how a stage's main process ended.
struct cs_stage_status {
    int32_t stage;               // 0 compile, 1 run; CS_STAGE_NETWORK
    int32_t wait_status;
    int32_t network_touched;     // non-zero: since the sandbox was made, a socket other than a unix one was
                                 // made in it (or the init could not watch for them): its network
                                 // namespace must not serve another sandbox
    int32_t reserved;
};

enum { CS_GO_RUN = 'r' };  // the byte that starts the run stage after a compile

/// Clones a sandbox init into new pid, mount, network, ipc and uts namespaces. The init builds the
/// sandbox, reports READY on report_fd, then waits for one job on control_fd, runs it as `uid`, and
/// writes the wait status on status_fd when the main process exits. Returns the init's pid (host
/// view), or -1 with errno set.
pid_t cs_sandbox_spawn(const struct cs_sandbox_spec *spec);

/// cs_sandbox_spawn with more clone flags (CLONE_PARENT for a zygote). With spec.prestart_fork it
/// also returns 0, in the forked interpreter, once that runs as the sandbox user inside.
pid_t cs_sandbox_spawn_flags(const struct cs_sandbox_spec *spec, uint64_t extra_clone_flags);

// Zygotes (zygote.c): an interpreter, initialised once on the host, spawns sandboxes for the
// daemon; each sandbox's pre-started interpreter is a fork of it instead of a fresh start.

/// In the zygote: waits for one spawn request on `sock` (a SOCK_SEQPACKET socket from the daemon)
/// and serves it. The interpreter calls it between its own before- and after-fork hooks (Python:
/// PyOS_BeforeFork, then PyOS_AfterFork_Parent or _Child), like a fork. Returns
/// CS_ZYGOTE_CHILD in a forked interpreter (inside its sandbox: fd 3 brings its job),
/// CS_ZYGOTE_SERVED in the zygote after a request, CS_ZYGOTE_GONE when the daemon is gone.
int cs_zygote_serve_one(int sock);
/// cs_zygote_serve_one for a spawner of plain sandboxes (codesand-spawner): a request for a
/// forked interpreter (which would be this process) is refused with EINVAL; one whose init execs
/// its interpreter is served.
int cs_zygote_serve_one_plain(int sock);
enum { CS_ZYGOTE_CHILD = 0, CS_ZYGOTE_SERVED = 1, CS_ZYGOTE_GONE = 2 };
/// The same three, as symbols of the library for a launcher's FFI to read by name.
extern const int cs_zygote_child, cs_zygote_served, cs_zygote_gone;

/// In the zygote, once, when it is ready to serve: empties its bounding set (cs_drop_bounding_set)
/// and tells the daemon (cs_zygote_await_ready). On the thread that will serve.
int cs_zygote_announce(int sock);
/// In the daemon: waits for the zygote's announcement. 0 when it came; -1 (errno ETIMEDOUT, or
/// ECONNRESET when the zygote died starting) otherwise.
int cs_zygote_await_ready(int sock, int timeout_ms);

/// How a failed cs_zygote_spawn left things.
enum cs_zygote_failure {
    CS_ZYGOTE_LOCAL = 4,     // the request could not be made here (too big, no memory): nothing sent
    CS_ZYGOTE_NOT_SENT = 1,  // the zygote got nothing (it is gone): the fds may be used again
    CS_ZYGOTE_REFUSED = 2,   // it answered that it spawned nothing (errno says why); it serves on
    CS_ZYGOTE_UNKNOWN = 3,   // no answer: an init may exist with the fds; the zygote must be stopped
};

/// In the daemon: asks the zygote behind `sock` to spawn `spec`. With a prestart_argv, the
/// interpreter is a fork of the zygote's if `fork_interpreter` (prestart_argv and env are not
/// sent), else the init execs prestart_argv with prestart_env, as an init the daemon cloned would.
/// The init is the daemon's child (CLONE_PARENT). Returns the init's pid, or -1 with errno and
/// *failure set.
pid_t cs_zygote_spawn(int sock, const struct cs_sandbox_spec *spec, int fork_interpreter, int timeout_ms, int *failure);

/// Empties the calling thread's capability bounding set (its effective capabilities stay). Every
/// zygote does it once at start (cs_zygote_announce), so that the inits it clones have nothing left
/// to drop.
int cs_drop_bounding_set(void);

/// Names of the steps, for error messages.
const char *cs_step_name(int step);

// Constants Swift's Glibc module does not export.
uint64_t cs_clone_flags_sandbox(void);


// The daemon's calls Swift's Glibc cannot reach (host_syscalls.c).
/// pipe2() with O_CLOEXEC.
int cs_pipe_cloexec(int fds[2]);
/// 1 if path is a cgroup2 mount, 0 if not, -1 on error.
int cs_is_cgroup2(const char *path);
/// A non-blocking, close-on-exec eventfd.
int cs_eventfd(void);
int cs_set_thread_name(const char *name);
/// posix_spawn_file_actions_addchdir_np (a GNU extension Swift does not see).
int cs_spawn_add_chdir(posix_spawn_file_actions_t *actions, const char *dir);
/// posix_spawn_file_actions_addclosefrom_np: close every fd from `from` up in the child.
int cs_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int from);
#include "cs_seccomp.h"
#endif
