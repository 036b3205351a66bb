// The sandbox's network namespace: a new one costs ~0.5 ms of CPU to make, a kworker's teardown
// after the run, and a loopback to bring up. So each slot keeps one (the daemon holds it by fd)
// and its next init enters it again — but only while it is exactly as a new one is: no socket
// left in it, no counter moved. A run that used the network at all (a socket bound, a packet on
// lo, a route looked up, a flow label) leaves a trace in the namespace's own counters, and the
// next init makes a new namespace instead. What is compared is cs_netns_fingerprint: a hash of the
// namespace's own numbers, the same for every fresh namespace of a kernel.
#define _GNU_SOURCE
#include "sandbox_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv(uint64_t h, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)p[i]; h *= FNV_PRIME; }
    return h;
}

// sockstat's lines mix the namespace's numbers with the host's ("sockets: used", TCP "orphan",
// "alloc", "mem", UDP "mem" are global): only "inuse", "tw" (TIME_WAIT) and FRAG "memory" are the
// namespace's. Hashes "LABEL key value" for those.
static uint64_t hash_sockstat(uint64_t h, char *text) {
    char *save_line = NULL;
    for (char *line = strtok_r(text, "\n", &save_line); line; line = strtok_r(NULL, "\n", &save_line)) {
        char *save = NULL, *label = strtok_r(line, " ", &save);
        if (!label) continue;
        for (char *key = strtok_r(NULL, " ", &save); key; key = strtok_r(NULL, " ", &save)) {
            char *value = strtok_r(NULL, " ", &save);
            if (!value) break;
            if (strcmp(key, "inuse") && strcmp(key, "tw") && strcmp(key, "memory")) continue;
            h = fnv(h, label, strlen(label));
            h = fnv(h, key, strlen(key));
            h = fnv(h, value, strlen(value));
        }
    }
    return h;
}

uint64_t cs_netns_fingerprint(const char *net_dir) {
    // The namespace's devices (lo's counters), MIBs, sockets by protocol, unix sockets, IPv6 flow
    // labels (which linger after their socket).
    static const char *const whole[] = {"dev", "snmp", "snmp6", "netstat", "unix", "ip6_flowlabel"};
    static const char *const sockstat[] = {"sockstat", "sockstat6"};
    char text[16384];  // a fresh namespace's longest file (snmp6) is ~5 KiB
    char path[512];
    uint64_t h = FNV_OFFSET;
    for (size_t f = 0; f < sizeof whole / sizeof *whole + sizeof sockstat / sizeof *sockstat; f++) {
        int is_sockstat = f >= sizeof whole / sizeof *whole;
        const char *name = is_sockstat ? sockstat[f - sizeof whole / sizeof *whole] : whole[f];
        if (!cs_path_join(path, sizeof path, net_dir, "/") || !cs_path_join(path, sizeof path, path, name)) return 0;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (!strcmp(name, "ip6_flowlabel") || !strcmp(name, "snmp6") || !strcmp(name, "sockstat6")) continue;  // no IPv6
            return 0;
        }
        size_t len = 0;
        ssize_t n;
        while (len < sizeof text - 1 && ((n = read(fd, text + len, sizeof text - 1 - len)) > 0 || (n < 0 && errno == EINTR))) {
            if (n > 0) len += (size_t)n;
        }
        close(fd);
        if (len == sizeof text - 1) return 0;  // more than a fresh namespace ever shows: not fresh
        text[len] = 0;
        h = fnv(h, name, strlen(name) + 1);
        h = is_sockstat ? hash_sockstat(h, text) : fnv(h, text, len);
    }
    return h == 0 ? 1 : h;
}

int cs_enter_kept_netns(const struct cs_sandbox_spec *s) {
    if (s->netns_fd <= 0) return 0;  // cloned with CLONE_NEWNET: new already
    if (s->netns_fingerprint != 0 && setns(s->netns_fd, CLONE_NEWNET) == 0 &&
        cs_netns_fingerprint("/proc/self/net") == s->netns_fingerprint) return 1;
    return -1;
}

void cs_bring_up_loopback(void) {
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
