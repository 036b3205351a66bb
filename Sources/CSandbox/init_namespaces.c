// The init's namespaces beyond its clone's: the slot's kept network namespace or a new one, the
// slot's base mount namespace (kept, or built now) and the run's copy of it, and the socket watch
// that tells whether a run touched its network namespace (sandbox_init.c runs the recipe; see
// README, "Security model", for why nothing of a run survives in what a slot keeps).
#define _GNU_SOURCE
#include "sandbox_internal.h"
#include "cs_seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// The namespaces to join, if the spec names them: their fds follow the cgroup fds.
int cs_joins_netns(const struct cs_sandbox_spec *s) { return s->join_netns_fd > 2; }
int cs_joins_mntns(const struct cs_sandbox_spec *s) { return s->join_mntns_fd > 2; }
int cs_netns_fd(const struct cs_sandbox_spec *s) { return FD_CGROUP0 + s->n_cgroup_fds; }
int cs_mntns_fd(const struct cs_sandbox_spec *s) { return cs_netns_fd(s) + cs_joins_netns(s); }


// The network namespace: the slot's kept one (the daemon keeps it while no run has made a socket
// in it but unix ones: see cs_install_socket_watch), or a new one. Joined only if no socket lives
// in it any more — a unix socket can outlive its processes for a moment, in flight inside another
// (its garbage collection is asynchronous) — else the init makes a new one after all. Returns 1
// when the namespace is new (its loopback is still down and its settings the kernel's).
int cs_join_network(const struct cs_sandbox_spec *s) {
    if (!cs_joins_netns(s)) return 1;
    int fd = cs_netns_fd(s);
    if (setns(fd, CLONE_NEWNET) < 0) cs_fail(CS_STEP_NETNS);
    close(fd);
    // "sockets: used" counts the sockets of every family that exist in this namespace now.
    char buf[64];
    ssize_t n = -1;
    int stat = open("/proc/self/net/sockstat", O_RDONLY | O_CLOEXEC);
    if (stat >= 0) { n = read(stat, buf, sizeof buf - 1); close(stat); }
    static const char empty[] = "sockets: used 0\n";
    if (n >= (ssize_t)sizeof empty - 1 && memcmp(buf, empty, sizeof empty - 1) == 0) return 0;
    if (unshare(CLONE_NEWNET) < 0) cs_fail(CS_STEP_NETNS);
    return 1;
}

// The root: a copy of the slot's base mount namespace (built by an earlier sandbox of the slot,
// kept by the daemon), or of one built now — which this init keeps open for the daemon to take,
// the slot's base from now on. Either way the run's own mounts go into a copy of the base, so
// nothing of them reaches the base: the program cannot mount anything (no capabilities; seccomp
// denies it), and the base's mounts are private and read-only.
void cs_enter_root(const struct cs_sandbox_spec *s, int fresh_network) {
    if (cs_joins_mntns(s)) {
        if (setns(cs_mntns_fd(s), CLONE_NEWNS) < 0) cs_fail(CS_STEP_MNTNS);  // also moves root and cwd to its root
        close(cs_mntns_fd(s));
    } else {
        // Before the pivot: the host's /proc is still there to name the namespace by.
        int base = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        if (base < 0 || dup3(base, CS_FD_BASE_MNTNS, O_CLOEXEC) < 0) cs_fail(CS_STEP_MNTNS);
        close(base);
        if (!cs_build_base(s)) close(CS_FD_BASE_MNTNS);  // this sandbox's alone: nothing for the daemon to keep
    }
    if (unshare(CLONE_NEWNS) < 0 || chdir("/") < 0) cs_fail(CS_STEP_MNTNS);
    cs_mount_run_parts(s, fresh_network);
}

// The socket watch's listener (cs_install_socket_watch), -1 without one; and whether a socket
// other than a unix one has been let through in this sandbox (or could have been: no watch).
int cs_socket_watch = -1;
int cs_network_touched;

static void on_child(int sig) { (void)sig; }

// Tells the daemon, once, that a socket other than a unix one may exist from now on (a record on
// the status pipe that no stage's status is): it watches the namespace's TCP queues from then on.
void cs_announce_network(void) {
    static int announced;
    if (announced || !cs_network_touched) return;
    announced = 1;
    struct cs_stage_status record = {.stage = CS_STAGE_NETWORK, .network_touched = 1};
    cs_write_all(FD_STATUS, &record, sizeof record);
}

// Waits until a child exits (SIGCHLD, blocked but while waiting, interrupts the wait) or a socket
// is announced on the watch: the namespace is marked before the call goes on. Calls announced
// once the stage's status is written are never answered: they wait, and die with the sandbox.
void cs_await_child_or_socket(void) {
    sigset_t none;
    sigemptyset(&none);
    struct pollfd pfd = {.fd = cs_socket_watch, .events = POLLIN};
    if (ppoll(&pfd, 1, NULL, &none) <= 0) return;
    if (pfd.revents & POLLIN) {
        cs_network_touched = 1;
        cs_announce_network();  // before the socket exists
        cs_answer_socket_watch(cs_socket_watch);
    } else if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) {
        cs_network_touched = 1;  // no watch any more: wait the plain way
        cs_announce_network();
        close(cs_socket_watch);
        cs_socket_watch = -1;
    }
}

// SIGCHLD gets a handler (an ignored signal would not interrupt ppoll) and is blocked outside the
// wait; the program's start unblocks it, and its execve resets the handler.
void cs_watch_children(void) {
    if (cs_socket_watch < 0) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_child;
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
}

