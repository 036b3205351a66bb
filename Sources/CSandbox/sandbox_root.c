// The sandbox's root filesystem, built by the init in its new mount namespace (see sandbox_init.c
// for why this is C and async-signal-safe): a read-only tmpfs of mount points, the host's system
// directories bound read-only, synthetic /etc files, its own /proc with masks, a minimal /dev,
// capped tmpfs for the writable places; then the hostname, loopback, and pivot_root.
#define _GNU_SOURCE
#include "sandbox_internal.h"

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

// The host's system directories, shown read-only through an overlay (lowerdir = the directory and
// an empty one; overlayfs needs two lower layers without an upper). Not a bind mount: a bind shares
// the host's inodes, so a lock a snippet takes (flock, fcntl, OFD) on /etc/passwd would block the
// host's own lockers of that file for the whole run. The overlay has inodes of its own, and its
// reads still go to the host's files and their page cache. Falls back to a bind where the overlay
// cannot be mounted (no overlayfs, stacking too deep, a path that cannot be written in its
// options: ':', ',', '\\'). Mounts below `src` on the host are not in its overlay: the daemon
// lists them as system directories of their own (SandboxLayout), mounted over it in order.
//
// Its directories' inode numbers must be the host's (xino): without it, overlayfs numbers the
// directories of layers on different file systems from a counter of its own, which a base shared
// by a slot's runs would carry from run to run (how many directories, and which, the last run
// looked up). Where xino cannot be had, `*shareable` is cleared: the base is then the one
// sandbox's only.
static int mount_system_dir(const char *src, const char *dst, const char *empty, int *shareable) {
    char opts[4200];
    const char *parts[] = {"lowerdir=", src, ":", empty, ",xino=on", NULL};
    size_t o = 0;
    int plain = 1;
    for (const char *c = src; *c; c++) if (*c == ':' || *c == ',' || *c == '\\') plain = 0;
    for (int i = 0; plain && parts[i]; i++) {
        size_t l = cs_str_len(parts[i]);
        if (o + l + 1 > sizeof opts) { plain = 0; break; }
        memcpy(opts + o, parts[i], l);
        o += l;
    }
    opts[o] = 0;
    if (plain && mount("overlay", dst, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, opts) == 0) {
        struct stat host, shown;
        // xino=on that the kernel turned off (inode numbers too wide to tag) shows as other numbers.
        if (stat(src, &host) < 0 || stat(dst, &shown) < 0 || (host.st_ino & 0xffffffffu) != (shown.st_ino & 0xffffffffu)) *shareable = 0;
        return make_readonly(dst);
    }
    if (plain) {
        opts[o - (sizeof ",xino=on" - 1)] = 0;  // kernels before 4.17 know no xino
        if (mount("overlay", dst, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, opts) == 0) {
            *shareable = 0;
            return make_readonly(dst);
        }
    }
    return bind_readonly(src, dst);
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
        size_t l = cs_str_len(s);
        if (o + l + 1 > sizeof opts) { errno = E2BIG; return -1; }
        memcpy(opts + o, s, l);
        o += l;
    }
    opts[o] = 0;
    return mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, opts);
}

static void build_dev(const char *root) {
    char path[4096];
    if (!cs_path_join(path, sizeof path, root, "/dev") || mkdir(path, 0755) < 0) cs_fail(CS_STEP_DEV);
    static const char *const devices[] = {"null", "zero", "full", "random", "urandom", NULL};
    for (int i = 0; devices[i]; i++) {
        char host[64] = "/dev/";
        memcpy(host + 5, devices[i], cs_str_len(devices[i]) + 1);
        char dst[4096];
        if (!cs_path_join(dst, sizeof dst, path, host + 4)) cs_fail(CS_STEP_DEV);
        int fd = open(dst, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd < 0) cs_fail(CS_STEP_DEV);
        close(fd);
        // A bind mount keeps the host device usable although the tmpfs below is nodev.
        if (mount(host, dst, NULL, MS_BIND, NULL) < 0) cs_fail(CS_STEP_DEV);
        if (mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NOEXEC, NULL) < 0) cs_fail(CS_STEP_DEV);
    }
    static const char *const links[] = {"fd", "/proc/self/fd", "stdin", "/proc/self/fd/0", "stdout",
                                        "/proc/self/fd/1", "stderr", "/proc/self/fd/2", NULL};
    for (int i = 0; links[i]; i += 2) {
        char dst[4096], name[16] = "/";
        memcpy(name + 1, links[i], cs_str_len(links[i]) + 1);
        if (!cs_path_join(dst, sizeof dst, path, name) || symlink(links[i + 1], dst) < 0) cs_fail(CS_STEP_DEV);
    }
}

static void build_proc(const char *root, const char *const *masked, int fresh_network) {
    char path[4096];
    if (!cs_path_join(path, sizeof path, root, "/proc")) cs_fail(CS_STEP_PROC);  // the base made it
    // A procfs of the new pid namespace: only the sandbox's own processes are visible.
    if (mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) cs_fail(CS_STEP_PROC);
    // The network namespace's default TCP receive buffer: 16 KiB to start (autotuning still grows
    // it, to the usual 6 MiB, for connections a program reads). A connection waiting in a backlog
    // is charged to no cgroup and never grows, so this is what each can hold on the host's account
    // (programs cannot raise it: seccomp ignores SO_RCVBUF). Before /proc/sys becomes read-only.
    char rmem[4096];
    if (!cs_path_join(rmem, sizeof rmem, path, "/sys/net/ipv4/tcp_rmem")) cs_fail(CS_STEP_PROC);
    int fd = fresh_network ? open(rmem, O_WRONLY | O_CLOEXEC | O_NOFOLLOW) : -1;  // a kept namespace has it
    if (fd >= 0) {  // absent without IPv4
        const char value[] = "4096 16384 6291456";
        if (cs_write_all(fd, value, sizeof value - 1) < 0) cs_fail(CS_STEP_PROC);
        close(fd);
    }
    for (int i = 0; masked && masked[i]; i++) {
        char dst[4096];
        struct stat st;
        if (!cs_path_join(dst, sizeof dst, path, masked[i] + 5)) cs_fail(CS_STEP_MASK);  // masked[i] starts with "/proc"
        if (lstat(dst, &st) < 0) continue;  // absent on this kernel
        if (S_ISDIR(st.st_mode)) {
            // Directories (e.g. /proc/sys) stay readable but become read-only.
            if (bind_readonly(dst, dst) < 0) cs_fail(CS_STEP_MASK);
        } else if (mount("/dev/null", dst, NULL, MS_BIND, NULL) < 0) {
            cs_fail(CS_STEP_MASK);
        }
    }
}

// Lays each synthetic file over its path: written to a scratch file in the root tmpfs, bound over
// the target (which exists in a read-only bind), and the scratch name unlinked (the mount keeps it).
static void lay_files(const char *root, const char *const *files) {
    for (int i = 0; files && files[i] && files[i + 1]; i += 2) {
        char dst[4096], scratch[4096];
        if (!cs_path_join(dst, sizeof dst, root, files[i])) cs_fail(CS_STEP_FILES);
        if (access(dst, F_OK) < 0) continue;  // nothing to hide or replace on this host
        if (!cs_path_join(scratch, sizeof scratch, root, "/.scratch")) cs_fail(CS_STEP_FILES);
        int fd = open(scratch, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0 || cs_write_all(fd, files[i + 1], cs_str_len(files[i + 1])) < 0) cs_fail(CS_STEP_FILES);
        close(fd);
        if (mount(scratch, dst, NULL, MS_BIND, NULL) < 0) cs_fail(CS_STEP_FILES);
        if (make_readonly(dst) < 0) cs_fail(CS_STEP_FILES);
        if (unlink(scratch) < 0) cs_fail(CS_STEP_FILES);
    }
}

static void bring_up_loopback(void) {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) cs_fail(CS_STEP_LOOPBACK);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) cs_fail(CS_STEP_LOOPBACK);
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) cs_fail(CS_STEP_LOOPBACK);
    close(sock);
}

// The slot's base: what every sandbox of the slot shows read-only, built in the init's new mount
// namespace, which it pivots into. Mount points for the run's own mounts (cs_mount_run_parts) are
// made here, before the root becomes read-only.
int cs_build_base(const struct cs_sandbox_spec *s) {
    int shareable = 1;
    const char *root = s->root_dir;
    char path[4096];
    // Nothing mounted from here on may propagate back to the host.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) cs_fail(CS_STEP_MOUNT_PRIVATE);
    // The root itself: a tiny tmpfs holding only mount points and symlinks; made read-only at the end.
    if (mount_tmpfs(root, "0755", 1 << 20, 4096, 0, 0) < 0) cs_fail(CS_STEP_ROOT_TMPFS);
    // The overlays' empty lower layer, in the root tmpfs (read-only at the end), named relative to
    // it: /proc/self/mountinfo inside shows "lowerdir=/usr:.empty", not the host's state directory.
    if (chdir(root) < 0 || mkdir(".empty", 0555) < 0) cs_fail(CS_STEP_BIND_RO);
    for (int i = 0; s->ro_paths && s->ro_paths[i] && s->ro_paths[i + 1]; i += 2) {
        if (!cs_path_join(path, sizeof path, root, s->ro_paths[i + 1]) || mkdir_p(path, 0755) < 0) cs_fail(CS_STEP_BIND_RO);
        if (mount_system_dir(s->ro_paths[i], path, ".empty", &shareable) < 0) cs_fail(CS_STEP_BIND_RO);
    }
    for (int i = 0; s->links && s->links[i] && s->links[i + 1]; i += 2) {
        char name[256] = "/";
        size_t l = cs_str_len(s->links[i]);
        if (l + 2 > sizeof name) cs_fail(CS_STEP_SYMLINK);
        memcpy(name + 1, s->links[i], l + 1);
        if (!cs_path_join(path, sizeof path, root, name) || symlink(s->links[i + 1], path) < 0) cs_fail(CS_STEP_SYMLINK);
    }
    lay_files(root, s->files);
    build_dev(root);
    // The mount points of the run's own mounts.
    static const char *const points[] = {"/proc", "/dev/shm", "/tmp", "/var", "/var/tmp", NULL};
    static const mode_t modes[] = {0555, 01777, 01777, 0755, 01777};
    for (int i = 0; points[i]; i++) {
        if (!cs_path_join(path, sizeof path, root, points[i]) || mkdir(path, modes[i]) < 0) cs_fail(CS_STEP_TMPFS);
    }
    if (!cs_path_join(path, sizeof path, root, s->home) || mkdir_p(path, 0755) < 0) cs_fail(CS_STEP_TMPFS);

    // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only ours.
    if (chdir(root) < 0) cs_fail(CS_STEP_PIVOT_ROOT);
    if (syscall(SYS_pivot_root, ".", ".") < 0) cs_fail(CS_STEP_PIVOT_ROOT);
    if (umount2(".", MNT_DETACH) < 0) cs_fail(CS_STEP_PIVOT_ROOT);
    if (chdir("/") < 0) cs_fail(CS_STEP_PIVOT_ROOT);
    if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0) cs_fail(CS_STEP_ROOT_RDONLY);
    return shareable;
}

// What is the run's own, in its copy of the base (the init is in it, at its root): a procfs of its
// pid namespace with the masks, the capped tmpfs for the writable places, the hostname, and for a
// new network namespace its loopback.
void cs_mount_run_parts(const struct cs_sandbox_spec *s, int fresh_network) {
    build_proc("", s->masked_paths, fresh_network);
    // Writable places: each its own size- and inode-capped tmpfs, so "disk full" stays inside.
    // (Directories of one tmpfs, made detached with fsmount and cloned onto each place, measured
    // no cheaper: the superblock's cost moves into fsconfig, and the clones and the detached
    // tree's dissolution cost what the three superblocks saved. BENCHMARKS.md, 2026-12-02.)
    static const char *const scratch[] = {"/dev/shm", "/tmp", "/var/tmp", NULL};
    for (int i = 0; scratch[i]; i++) {
        if (mount_tmpfs(scratch[i], "1777", s->tmpfs_bytes, s->tmpfs_inodes, 0, 0) < 0) cs_fail(CS_STEP_TMPFS);
    }
    if (mount_tmpfs(s->home, "0700", s->tmpfs_bytes, s->tmpfs_inodes, s->uid, s->gid) < 0) cs_fail(CS_STEP_TMPFS);
    if (sethostname(s->hostname, cs_str_len(s->hostname)) < 0) cs_fail(CS_STEP_HOSTNAME);
    if (fresh_network) bring_up_loopback();  // a kept namespace's is up
}
