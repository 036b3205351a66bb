// Zygotes: an interpreter initialised once on the host spawns the sandboxes of its language, so
// that each sandbox's pre-started interpreter is a fork of it (a millisecond) instead of a fresh
// start (python3: ~12 ms of CPU). The daemon and the zygote talk over a SOCK_SEQPACKET socket:
// one message per spawn, the sandbox's pipe and cgroup fds attached (SCM_RIGHTS), one reply.
//
// The zygote is trusted code only (the interpreter's start-up and its launcher file,
// launchers/python3.py); it never sees a snippet. Snippets reach the forked interpreter through
// its own sandbox's pipes, after the init has dropped its privileges, so nothing of one run can
// reach the zygote or another run. Each init is cloned with CLONE_PARENT: it is the daemon's child, which
// waits for it and kills it exactly as for the sandboxes it clones itself.
#define _GNU_SOURCE
#include "csandbox.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define ZY_MAGIC 0x335a5943u  /* "CYZ3": seven lists (ZY_EXEC's argv, env and launcher file) */
#define ZY_FIXED_FDS 6        // control, report, status, stdin, stdout, stderr; then the cgroup fds
#define ZY_MAX_FDS (ZY_FIXED_FDS + CS_MAX_CGROUP_FDS + 2)
#define ZY_MAX_MESSAGE (1u << 20)
#define ZY_MAX_STRINGS 16384u

struct zy_request {
    uint32_t magic;
    uint32_t n_cgroup_fds;
    uint32_t uid, gid;
    uint64_t tmpfs_bytes, tmpfs_inodes;
    uint64_t rlimit_cpu_s, rlimit_fsize, rlimit_nofile;
    uint32_t counts[7];    // strings in ro_paths, links, masked_paths, files, prestart argv, prestart env,
                           // prestart file (0 or 1)
    uint32_t strings_len;  // root_dir, hostname, home, then the seven lists, each string NUL-ended
    uint32_t flags;        // ZY_PLAIN or ZY_EXEC (neither: fork the zygote), ZY_JOIN_NETNS, ZY_JOIN_MNTNS
};
#define ZY_LISTS 7

// The sandbox starts nothing in advance (spec.prestart_argv was NULL): the zygote only clones its
// init, a clone of a small process instead of the daemon, and goes on serving.
#define ZY_PLAIN 1u
// The last fd attached is a network namespace for the init to join (spec.join_netns_fd).
#define ZY_JOIN_NETNS 2u
// Then (last) a base mount namespace for it to work in a copy of (spec.join_mntns_fd).
#define ZY_JOIN_MNTNS 4u
// The init starts the interpreter the plain way: it execs the request's prestart argv with its env
// and, if sent, its launcher file (a language with no zygote of its own, e.g. node, whose threads
// make a fork unsafe).
#define ZY_EXEC 8u
#define ZY_FLAGS (ZY_PLAIN | ZY_JOIN_NETNS | ZY_JOIN_MNTNS | ZY_EXEC)

struct zy_reply {
    int32_t pid;  // the init's pid, or -1
    int32_t err;  // errno when pid is -1
};

static uint32_t list_count(const char *const *list) {
    uint32_t n = 0;
    while (list && list[n]) n++;
    return n;
}

// ---- the daemon's side ----

#define ZY_READY 'Z'

int cs_zygote_announce(int sock) {
    // A zygote dies with the daemon that started it (from its parent thread, which lives as long).
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) return -1;
    // Its inits start with an empty bounding set: a zygote never execs, and each init would
    // otherwise drop ~40 capabilities one prctl at a time (each a copy of its credentials).
    if (cs_drop_bounding_set() < 0) return -1;
    char ready = ZY_READY;
    ssize_t n;
    do { n = send(sock, &ready, 1, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -1;
}

int cs_zygote_await_ready(int sock, int timeout_ms) {
    struct pollfd pfd = {.fd = sock, .events = POLLIN};
    int ready;
    do { ready = poll(&pfd, 1, timeout_ms); } while (ready < 0 && errno == EINTR);
    if (ready < 0) return -1;
    if (ready == 0) { errno = ETIMEDOUT; return -1; }
    char byte = 0;
    ssize_t n;
    do { n = recv(sock, &byte, 1, 0); } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    if (n != 1 || byte != ZY_READY) { errno = ECONNRESET; return -1; }  // it died starting
    return 0;
}

pid_t cs_zygote_spawn(int sock, const struct cs_sandbox_spec *spec, int fork_interpreter, int timeout_ms, int *failure) {
    *failure = CS_ZYGOTE_LOCAL;
    if (spec->n_cgroup_fds < 0 || spec->n_cgroup_fds > CS_MAX_CGROUP_FDS) { errno = EINVAL; return -1; }
    const char *const singles[3] = {spec->root_dir, spec->hostname, spec->home};
    int prestart = spec->prestart_argv && spec->prestart_argv[0];
    int exec = prestart && !fork_interpreter;
    // The zygote refuses a program named by a relative path: not its fault, so not sent to it.
    if (exec && spec->prestart_argv[0][0] != '/') { errno = EINVAL; return -1; }
    const char *const file[2] = {exec ? spec->prestart_file : NULL, NULL};
    const char *const *lists[ZY_LISTS] = {spec->ro_paths, spec->links, spec->masked_paths, spec->files,
                                          exec ? spec->prestart_argv : NULL, exec ? spec->prestart_env : NULL, file};
    struct zy_request req = {
        .magic = ZY_MAGIC, .n_cgroup_fds = (uint32_t)spec->n_cgroup_fds, .uid = spec->uid, .gid = spec->gid,
        .tmpfs_bytes = spec->tmpfs_bytes, .tmpfs_inodes = spec->tmpfs_inodes,
        .rlimit_cpu_s = spec->prestart_rlimit_cpu_s, .rlimit_fsize = spec->prestart_rlimit_fsize,
        .rlimit_nofile = spec->prestart_rlimit_nofile,
        .flags = (!prestart ? ZY_PLAIN : exec ? ZY_EXEC : 0u) | (spec->join_netns_fd > 2 ? ZY_JOIN_NETNS : 0u) |
                 (spec->join_mntns_fd > 2 ? ZY_JOIN_MNTNS : 0u),
    };
    size_t len = 0;
    for (int i = 0; i < 3; i++) len += strlen(singles[i]) + 1;
    for (int l = 0; l < ZY_LISTS; l++) {
        req.counts[l] = list_count(lists[l]);
        for (uint32_t i = 0; i < req.counts[l]; i++) len += strlen(lists[l][i]) + 1;
    }
    if (len + sizeof req > ZY_MAX_MESSAGE) { errno = E2BIG; return -1; }
    req.strings_len = (uint32_t)len;
    char *msg = malloc(sizeof req + len);
    if (!msg) return -1;
    memcpy(msg, &req, sizeof req);
    char *p = msg + sizeof req;
    for (int i = 0; i < 3; i++) { size_t l = strlen(singles[i]) + 1; memcpy(p, singles[i], l); p += l; }
    for (int l = 0; l < ZY_LISTS; l++) {
        for (uint32_t i = 0; i < req.counts[l]; i++) { size_t n = strlen(lists[l][i]) + 1; memcpy(p, lists[l][i], n); p += n; }
    }

    int fds[ZY_MAX_FDS] = {spec->control_fd, spec->report_fd, spec->status_fd, spec->stdin_fd, spec->stdout_fd, spec->stderr_fd};
    int nfds = ZY_FIXED_FDS + spec->n_cgroup_fds;
    for (int i = 0; i < spec->n_cgroup_fds; i++) fds[ZY_FIXED_FDS + i] = spec->cgroup_fds[i];
    if (req.flags & ZY_JOIN_NETNS) fds[nfds++] = spec->join_netns_fd;
    if (req.flags & ZY_JOIN_MNTNS) fds[nfds++] = spec->join_mntns_fd;
    union { char buf[CMSG_SPACE(sizeof(int) * ZY_MAX_FDS)]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {.iov_base = msg, .iov_len = sizeof req + len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                        .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
    ssize_t sent;
    do { sent = sendmsg(sock, &mh, MSG_NOSIGNAL); } while (sent < 0 && errno == EINTR);
    int saved = errno;
    free(msg);
    if (sent < 0) {
        if (saved == EPIPE || saved == ECONNRESET || saved == ECONNREFUSED || saved == ENOTCONN) *failure = CS_ZYGOTE_NOT_SENT;
        errno = saved;
        return -1;
    }

    *failure = CS_ZYGOTE_UNKNOWN;
    struct pollfd pfd = {.fd = sock, .events = POLLIN};
    int ready;
    do { ready = poll(&pfd, 1, timeout_ms); } while (ready < 0 && errno == EINTR);
    if (ready < 0) return -1;
    if (ready == 0) { errno = ETIMEDOUT; return -1; }
    struct zy_reply reply;
    ssize_t got;
    do { got = recv(sock, &reply, sizeof reply, 0); } while (got < 0 && errno == EINTR);
    if (got < 0) return -1;
    if (got != (ssize_t)sizeof reply) { errno = ECONNRESET; return -1; }  // 0: the zygote is gone
    if (reply.pid <= 0) {
        *failure = CS_ZYGOTE_REFUSED;
        errno = reply.err > 0 ? reply.err : EPROTO;
        return -1;
    }
    return (pid_t)reply.pid;
}

// ---- the zygote's side (single-threaded: static buffers) ----

static char message[ZY_MAX_MESSAGE];
// The most of `message` any request has filled: a fork clears that much, so no earlier, longer
// request's host paths stay in its memory either.
static size_t message_used;
static const char *pointers[ZY_MAX_STRINGS + 8];

// The next NUL-ended string at *p before end, or NULL when there is none.
static const char *next_string(const char **p, const char *end) {
    const char *s = *p;
    const char *nul = s < end ? memchr(s, 0, (size_t)(end - s)) : NULL;
    if (!nul) return NULL;
    *p = nul + 1;
    return s;
}

// Points the spec at the request's strings; 0 when they are exactly what the header announces.
static int decode(const struct zy_request *req, const char *strings, size_t len, struct cs_sandbox_spec *spec) {
    uint64_t total = 0;
    for (int l = 0; l < ZY_LISTS; l++) total += req->counts[l];
    if (total > ZY_MAX_STRINGS || req->counts[0] % 2 || req->counts[1] % 2 || req->counts[3] % 2) return -1;
    // One way to start the interpreter at most; a program to exec exactly when asked to.
    int exec = (req->flags & ZY_EXEC) != 0;
    if ((exec && (req->flags & ZY_PLAIN)) || (exec != (req->counts[4] > 0)) || (!exec && req->counts[5] > 0)) return -1;
    if (req->counts[6] > (exec ? 1u : 0u)) return -1;
    const char *p = strings, *end = strings + len, *items[3];
    for (int k = 0; k < 3; k++) {
        if (!(items[k] = next_string(&p, end))) return -1;
    }
    const char *const *starts[ZY_LISTS];
    size_t at = 0;
    for (int l = 0; l < ZY_LISTS; l++) {
        starts[l] = pointers + at;
        for (uint32_t i = 0; i < req->counts[l]; i++) {
            if (!(pointers[at++] = next_string(&p, end))) return -1;
        }
        pointers[at++] = NULL;
    }
    if (p != end || items[0][0] != '/' || items[2][0] != '/') return -1;
    // The sandbox user is never root; the masks are under /proc (build_proc skips that prefix).
    if (req->uid == 0 || req->gid == 0 || (req->flags & ~ZY_FLAGS)) return -1;
    for (const char *const *m = starts[2]; *m; m++) {
        if (strncmp(*m, "/proc/", 6) != 0) return -1;
    }
    spec->root_dir = items[0];
    spec->hostname = items[1];
    spec->home = items[2];
    spec->ro_paths = starts[0];
    spec->links = starts[1];
    spec->masked_paths = starts[2];
    spec->files = starts[3];
    spec->uid = req->uid;
    spec->gid = req->gid;
    spec->tmpfs_bytes = req->tmpfs_bytes;
    spec->tmpfs_inodes = req->tmpfs_inodes;
    spec->prestart_rlimit_cpu_s = req->rlimit_cpu_s;
    spec->prestart_rlimit_fsize = req->rlimit_fsize;
    spec->prestart_rlimit_nofile = req->rlimit_nofile;
    spec->prestart_fork = !(req->flags & (ZY_PLAIN | ZY_EXEC));
    spec->prestart_argv = exec ? starts[4] : NULL;
    spec->prestart_env = exec ? starts[5] : NULL;
    spec->prestart_file = exec ? starts[6][0] : NULL;
    if (exec && spec->prestart_argv[0][0] != '/') return -1;  // the daemon sends absolute paths only
    return 0;
}

static void answer(int sock, pid_t pid, int err) {
    struct zy_reply reply = {.pid = pid, .err = err};
    while (send(sock, &reply, sizeof reply, MSG_NOSIGNAL) < 0 && errno == EINTR) {}
}

// The answers of cs_zygote_serve_one as data: a launcher reads them by name from the library
// (python3.py: ctypes' in_dll) instead of repeating the numbers.
const int cs_zygote_child = CS_ZYGOTE_CHILD;
const int cs_zygote_served = CS_ZYGOTE_SERVED;
const int cs_zygote_gone = CS_ZYGOTE_GONE;

static int serve_one(int sock, int plain_only);

int cs_zygote_serve_one(int sock) { return serve_one(sock, 0); }

int cs_zygote_serve_one_plain(int sock) { return serve_one(sock, 1); }

static int serve_one(int sock, int plain_only) {
    union { char buf[CMSG_SPACE(sizeof(int) * ZY_MAX_FDS)]; struct cmsghdr align; } control;
    struct iovec iov = {.iov_base = message, .iov_len = sizeof message};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
    ssize_t n;
    do { n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n <= 0) return CS_ZYGOTE_GONE;  // the daemon closed its end, or the socket failed
    if ((size_t)n > message_used) message_used = (size_t)n;
    int fds[ZY_MAX_FDS], nfds = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + sizeof(int) * (size_t)i, sizeof fd);
            if (nfds < ZY_MAX_FDS) fds[nfds++] = fd; else close(fd);
        }
    }
    struct zy_request req;
    struct cs_sandbox_spec spec;
    memset(&spec, 0, sizeof spec);
    int err = 0;
    if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)n < sizeof req) {
        err = EMSGSIZE;
    } else {
        memcpy(&req, message, sizeof req);
        if (req.magic != ZY_MAGIC || req.n_cgroup_fds > CS_MAX_CGROUP_FDS ||
            nfds != ZY_FIXED_FDS + (int)req.n_cgroup_fds + !!(req.flags & ZY_JOIN_NETNS) + !!(req.flags & ZY_JOIN_MNTNS) ||
            req.strings_len != (size_t)n - sizeof req ||
            decode(&req, message + sizeof req, req.strings_len, &spec) != 0 || (plain_only && spec.prestart_fork)) {
            err = EINVAL;
        }
    }
    pid_t pid = -1;
    if (!err) {
        spec.control_fd = fds[0]; spec.report_fd = fds[1]; spec.status_fd = fds[2];
        spec.stdin_fd = fds[3]; spec.stdout_fd = fds[4]; spec.stderr_fd = fds[5];
        spec.n_cgroup_fds = (int)req.n_cgroup_fds;
        for (int i = 0; i < spec.n_cgroup_fds; i++) spec.cgroup_fds[i] = fds[ZY_FIXED_FDS + i];
        int at = ZY_FIXED_FDS + spec.n_cgroup_fds;
        if (req.flags & ZY_JOIN_NETNS) spec.join_netns_fd = fds[at++];
        if (req.flags & ZY_JOIN_MNTNS) spec.join_mntns_fd = fds[at];
        pid = cs_sandbox_spawn_flags(&spec, CLONE_PARENT);
        if (pid == 0) {
            memset(message, 0, message_used);  // the host paths of requests are none of the snippet's business
            return CS_ZYGOTE_CHILD;
        }
        if (pid < 0) err = errno;
    }
    // The sandbox has its copies: ours must go, or the daemon never sees its pipes end.
    for (int i = 0; i < nfds; i++) close(fds[i]);
    answer(sock, pid, err);
    return CS_ZYGOTE_SERVED;
}
