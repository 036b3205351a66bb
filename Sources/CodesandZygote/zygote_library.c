// The zygotes' shared library (libCodesandZygote.so): the sandbox C code once more, linked
// without the Swift runtime (an interpreter loads it; see Package.swift), so that loading it
// changes nothing in the interpreter but these functions.
#include "../CSandbox/host_syscalls.c"
#include "../CSandbox/init_support.c"
#include "../CSandbox/init_namespaces.c"
#include "../CSandbox/sandbox_root.c"
#include "../CSandbox/sandbox_init.c"
#include "../CSandbox/seccomp_filter.c"
#include "../CSandbox/zygote.c"
