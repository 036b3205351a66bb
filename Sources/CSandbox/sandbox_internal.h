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
/// Builds the sandbox's root in the init's new mount namespace and pivots into it; brings up the
/// loopback of a new network namespace.
CS_HIDDEN void cs_build_root(const struct cs_sandbox_spec *s, int new_netns);
/// Enters the slot's kept network namespace (spec.netns_fd) if it is still as fresh as a new one:
/// 1 when it did, 0 when the init was cloned into a new one, -1 when the init must make a new one
/// (it may be in the host's or the used namespace now). Before setup_fds: it needs netns_fd.
CS_HIDDEN int cs_enter_kept_netns(const struct cs_sandbox_spec *s);
CS_HIDDEN void cs_bring_up_loopback(void);

#endif
