// The daemon's (host side) calls that Swift's Glibc module does not export: statfs magic,
// posix_spawn's _np file actions, eventfd, pipe2, the thread name.
#define _GNU_SOURCE
#include "csandbox.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <unistd.h>

int cs_is_cgroup2(const char *path) {
    struct statfs st;
    if (statfs(path, &st) < 0) return -1;
    return st.f_type == CGROUP2_SUPER_MAGIC;
}

int cs_spawn_add_chdir(posix_spawn_file_actions_t *actions, const char *dir) {
    return posix_spawn_file_actions_addchdir_np(actions, dir);
}

int cs_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

int cs_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

// The calling thread's name (its comm in ps and /proc), for threads Foundation does not name.
int cs_set_thread_name(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0); }

int cs_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
