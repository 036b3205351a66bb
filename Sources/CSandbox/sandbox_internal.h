// Shared by the sandbox's C files (not exported): fixed fds, failure reports, small
// async-signal-safe helpers, and the root filesystem's recipe (sandbox_root.c).
#ifndef SANDBOX_INTERNAL_H
#define SANDBOX_INTERNAL_H

#include "csandbox.h"

#include <stddef.h>

#define CS_HIDDEN __attribute__((visibility("hidden")))

// Fixed fd numbers inside the init, so nothing else of the daemon's survives into the sandbox.
enum { FD_CONTROL = 3, FD_REPORT, FD_STATUS, FD_STDIN, FD_STDOUT, FD_STDERR, FD_CGROUP0 };

/// A record on the report pipe (FD_REPORT).
CS_HIDDEN void cs_report_record(int kind, int step, int err);
/// Reports a failed step with errno and exits the init (or the program being set up).
CS_HIDDEN __attribute__((noreturn)) void cs_fail(int step);
CS_HIDDEN int cs_write_all(int fd, const void *buf, size_t len);
/// Reads exactly len bytes; returns 0 on success, 1 on EOF before any byte, -1 otherwise.
CS_HIDDEN int cs_read_all(int fd, void *buf, size_t len);
CS_HIDDEN size_t cs_str_len(const char *s);
/// Joins a and b into out (size PATH_MAX-ish); returns out or NULL if too long.
CS_HIDDEN char *cs_path_join(char *out, size_t cap, const char *a, const char *b);
/// Builds the slot's base (the read-only root every sandbox of the slot shows) in the init's new
/// mount namespace and pivots into it. 0 when it must not serve other sandboxes (see mount_system_dir).
CS_HIDDEN int cs_build_base(const struct cs_sandbox_spec *s);
/// Mounts the run's own parts in the init's copy of the base (/proc, the writable tmpfs), sets the
/// hostname; with `fresh_network`, sets up the new network namespace (loopback up, receive buffers).
CS_HIDDEN void cs_mount_run_parts(const struct cs_sandbox_spec *s, int fresh_network);

/// The capability bounding set's drop (only what is left) and the capability sets' clearing (init_support.c).
CS_HIDDEN int cs_clear_capabilities(void);

// init_namespaces.c
CS_HIDDEN int cs_joins_netns(const struct cs_sandbox_spec *s);
CS_HIDDEN int cs_joins_mntns(const struct cs_sandbox_spec *s);
/// The fixed fd numbers the spec's namespace fds get in the init (after the cgroup fds).
CS_HIDDEN int cs_netns_fd(const struct cs_sandbox_spec *s);
CS_HIDDEN int cs_mntns_fd(const struct cs_sandbox_spec *s);
/// Joins the slot's kept network namespace (or makes a new one): 1 when the namespace is new.
CS_HIDDEN int cs_join_network(const struct cs_sandbox_spec *s);
/// Enters a copy of the slot's base mount namespace (built now if the spec names none) and mounts the run's parts.
CS_HIDDEN void cs_enter_root(const struct cs_sandbox_spec *s, int fresh_network);
/// The socket watch's listener (-1: none) and whether a non-unix socket was let through (or could have been).
CS_HIDDEN extern int cs_socket_watch;
CS_HIDDEN extern int cs_network_touched;
/// In the init, while a stage runs: waits for a child's exit or answers one socket announcement.
CS_HIDDEN void cs_await_child_or_socket(void);
CS_HIDDEN void cs_announce_network(void);
/// SIGCHLD handled (to interrupt the wait) and blocked outside it.
CS_HIDDEN void cs_watch_children(void);

#endif
