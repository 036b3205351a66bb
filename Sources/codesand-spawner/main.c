// codesand-spawner: the zygote of plain sandboxes (README, "Zygotes"). The daemon starts it once,
// as it starts a language's zygote, with the socket on the fd named by its last argument, and it
// clones the init of every sandbox that has no pre-started interpreter (zygote.c; the init is the
// daemon's child through CLONE_PARENT). A clone of this small process costs a fraction of a clone
// of the daemon (whose page tables an init would copy, only to discard them at its program's
// exec), and its init's exit tears down next to nothing. C, with no threads (SwiftPM links the
// Swift runtime in statically, but no Swift code runs).
#include "csandbox.h"

#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int sock = atoi(argv[argc - 1]);
    // Its inits inherit the empty set: nothing to drop in each (confine_init, sandbox_init.c).
    // Before the filter's base (cs_zygote_announce does it again, for every zygote: a no-op here).
    if (cs_drop_bounding_set() != 0) return 1;
    // And the seccomp filter but the rules of the calls an init makes to build its sandbox: each
    // init adds only those (cs_install_seccomp). If it cannot, each init installs all of it.
    cs_install_seccomp_base();
    if (cs_zygote_announce(sock) != 0) return 1;
    // Only plain requests are served: nothing here may go on running in a sandbox.
    while (cs_zygote_serve_one_plain(sock) == CS_ZYGOTE_SERVED) {}
    return 0;
}
