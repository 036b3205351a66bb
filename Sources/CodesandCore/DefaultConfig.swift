import CodesandProtocol

/// The default configuration, as the commented file `codesandd --print-default-config` prints
/// and scripts/install writes to /etc/codesand/config.toml (keeping an existing one). A config file only needs the keys it changes: it is laid over this.
public enum DefaultConfig {
    /// `[limits.default]` and `[limits.max]`: a line for each limit of the table (`Limit`), its
    /// shipped value and, for the defaults, what it bounds.
    static var limitSections: String {
        func line(_ setting: String, _ comment: String?) -> String {
            guard let comment else { return setting + "\n" }
            return setting + String(repeating: " ", count: max(1, 39 - setting.count)) + "# " + comment + "\n"
        }
        return line("[limits.default]", "what a run gets when its request names no limit")
            + Limit.allCases.map { line("\($0.key) = \($0.row.shippedDefault)", $0.row.meaning) }.joined()
            + "\n" + line("[limits.max]", "the most a request may ask for; more is -32602")
            + Limit.allCases.map { line("\($0.key) = \($0.row.shippedMaximum)", nil) }.joined()
    }

    public static let toml = #"""
# codesand configuration. Every key is shown with its default; delete what you do not change.
# Sizes are in bytes, times in milliseconds, unless the key's name says otherwise.

[socket]
path = "/run/codesand/codesand.sock"   # unix socket the daemon listens on (unless systemd passes one)
group = "codesand"                     # the socket's group: its members may run code
mode = "0660"                          # the socket's permission bits, octal

[rpc]
max_message_bytes = 1048576            # longest request line; a longer one gets -32600 and the connection closes
max_connections = 256                  # client connections at once; one more gets -32004 and is closed
                                       # (lowered at start if the open-file limit leaves too few fds)
max_connections_per_uid = 64           # client connections at once from one uid (SO_PEERCRED); more: -32004

\#(limitSections)
[pool]
size = 4                               # sandboxes running at once (0 = twice the CPU count); a run idle for 100 ms (a
                                       # sleep) that holds under a quarter of its memory limit lends its turn meanwhile
spare = 4                              # sandboxes kept prepared beyond those: a run's turn goes to a spare
                                       # while the slot that ran last is reset (several ms of wall time, little
                                       # CPU); each costs its prepared sandbox's memory (0.6-10 MiB, see
                                       # BENCHMARKS.md). The LXD backend has none (each would be a container).

[queue]
max = 64                               # requests waiting for a sandbox; more get -32002 busy
max_wait_ms = 10000                    # longest wait for a sandbox before -32002 busy

[sandbox]
backend = "native"                     # "native": codesand's own namespaces and cgroups; "lxd": LXD containers ([lxd])
state_dir = "/run/codesand"            # the daemon's runtime directory (mount points of sandboxes)
cgroup_name = "codesand"               # the slots' cgroups live under this name (v1: in each controller; v2: in the daemon's cgroup)
uid_base = 2147400000                  # sandbox n runs as uid/gid uid_base+n; none may be a host user
hostname = "sandbox"
home = "/home/sandbox"                 # the program's home and working directory (a private tmpfs)
tmpfs_bytes = 67108864                 # size cap of each private tmpfs: home, /tmp, /dev/shm
tmpfs_inodes = 16384                   # file count cap of each private tmpfs
rootfs = "host"                        # "host": the host's /usr, /etc… read-only; "image": those of `image`
image = "/var/lib/codesand/image"      # a root filesystem made by `codesand image build` (rootfs = "image")
readonly_paths = ["/usr", "/etc"]      # system directories visible read-only inside
root_links = { bin = "usr/bin", sbin = "usr/sbin", lib = "usr/lib", lib64 = "usr/lib64" }
masked_paths = ["/proc/kcore", "/proc/sysrq-trigger", "/proc/keys", "/proc/timer_list", "/proc/kallsyms", "/proc/sys", "/proc/sysvipc", "/proc/acpi", "/proc/scsi"]
file_size_bytes = 67108864             # RLIMIT_FSIZE: largest file a program may write
open_files = 256                       # RLIMIT_NOFILE
socket_memory_bytes = 16777216         # cgroup v1: TCP/UDP buffers one sandbox may fill (v1 counts them apart from
                                       # memory_bytes; v2 counts them in it). Keep pool size × this far below tcp_mem
env = { PATH = "/usr/local/bin:/usr/bin:/bin", HOME = "/home/sandbox", LANG = "C.UTF-8", TMPDIR = "/tmp" }
zygote_library = ""                    # for languages with zygote = true; "": libCodesandZygote.so next to codesandd or in ../lib/codesand
launcher_dir = ""                      # the languages' launcher files; "": launchers/ next to codesandd, ../lib/codesand/launchers, or a build's copy
                                       # (each must be root's alone to change, as the zygote library: python3's runs as root)
compile_cache_entries = 512            # native backend: compiled programs kept in state_dir/compile-cache (root's alone), keyed by
compile_cache_bytes = 268435456        # SHA-256 of code, compile argv, compiler version and system; least recently used go first; 0 disables
keep_network_namespace = true          # native backend: a slot's network namespace serves its next sandbox while no run made a
                                       # socket in it but unix ones (~1 ms of CPU per run); a run can tell whether it did (README)

[lxd]                                  # sandbox.backend = "lxd": a pool of containers, restored to a snapshot after each run
socket = "/var/lib/lxd/unix.socket"    # LXD's unix socket ($LXD_DIR/unix.socket for a private LXD)
url = ""                               # https://HOST:8443 for a remote LXD (or a cluster member) instead of the socket
client_cert = ""                       # with url: the client certificate and key (PEM files) LXD trusts
client_key = ""                        #   (on the LXD host: lxc config trust add CERT)
fingerprint = ""                       # with url: the server certificate's SHA-256, pinned (hex, colons optional)
image = ""                             # image alias or fingerprint the containers are created from
source = ""                            # or an existing container's snapshot, "CONTAINER/SNAPSHOT" (one of the two)
prefix = "codesand"                    # containers PREFIX-0..PREFIX-(pool.size-1); others with the prefix are deleted
project = "default"
profiles = ["default"]                 # profiles of the containers (a profile's eth0 is masked: no network)
members = []                           # a cluster's members: slot i on members[i % n]; []: the cluster places them
uid = 1000                             # the sandbox user in the image: runs execute as it, in sandbox.home
gid = 1000
cpu_allowance_ms = 100                 # hard CPU quota of each container per 100 ms (limits.cpu.allowance)

[log]
level = "info"                         # trace, debug, info, notice, warning, error, critical
log_code = false                       # log each snippet's code (off: code is the users' business)

# Languages. Each: aliases; file (the snippet's file name in the home directory); run (argv:
# {file} is the file's path, {dir} the home directory, {args} the request's args, {flags} its
# compile_flags, spliced as separate elements — never a shell string); compile (the same, for a
# compile stage); template (code without `unless` in it is put into `wrap` at {code}); flags_pattern
# (regex each compile flag must match whole; without it compile_flags are refused); env (added to
# sandbox.env); limits and compile_limits (this language's defaults, cut to limits.max); version
# (argv run once at start on the host; a language whose program is missing is left out); prestart
# (argv of an interpreter started before a request, waiting on fd 3 for "path\0arg…"; [] turns
# pre-starting off), with launcher (a file in sandbox.launcher_dir, in the interpreter's language,
# whose text replaces {launcher}: the interpreter gets it as code, since no host path but /usr and
# /etc is visible in a sandbox; {launcher_file} names a file of the sandbox's own holding it, for an
# interpreter whose code path costs more than its script path, e.g. node's -e); zygote (the launcher also serves as a zygote, see the README).
[languages.python3]
aliases = ["py", "py3", "python"]
file = "main.py"
run = ["/usr/bin/python3", "{file}", "{args}"]
env = { PYTHONUNBUFFERED = "1", PYTHONDONTWRITEBYTECODE = "1" }
version = ["/usr/bin/python3", "--version"]
# Started before a request, its launcher (launchers/python3.py) waits on fd 3 for "path\0arg…",
# then runs the file as `python3 path args` would. As a zygote (zygote = true), it starts once on
# the host and each sandbox's interpreter is a fork of it (README, "Zygotes").
zygote = true
launcher = "python3.py"
prestart = ["/usr/bin/python3", "-c", "{launcher}"]

[languages.php]
aliases = []
file = "main.php"
run = ["/usr/bin/php", "-d", "display_errors=stderr", "{file}", "{args}"]
template = { unless = "<?", wrap = "<?php\n{code}" }
version = ["/usr/bin/php", "--version"]
zygote = true                          # launchers/php.php forks each interpreter from a zygote (FFI), as python3's
launcher = "php.php"
prestart = ["/usr/bin/php", "-d", "display_errors=stderr", "-r", "?>{launcher}"]   # -r code is PHP: ?> lets the file's <?php open it

[languages.bash]
aliases = []
file = "main.sh"
run = ["/bin/bash", "{file}", "{args}"]
version = ["/bin/bash", "--version"]
# A zygote only (its launcher is bash's start-up file, on the zygote's stdin): each sandbox's bash is
# a fork of one started once, which then opens the snippet as `bash main.sh` would
# (launchers/bash.sh, bash_zygote.c; the zygote's own script, /dev/null, is replaced by the job's).
zygote = true
launcher = "bash.sh"
prestart = ["/usr/bin/env", "BASH_ENV={launcher_stdin}", "/bin/bash", "/dev/null"]

[languages.sh]
aliases = ["dash"]
file = "main.sh"
run = ["/bin/sh", "{file}", "{args}"]
version = ["/usr/bin/dpkg-query", "-W", "-f", "${Version}", "dash"]

[languages.fish]
aliases = []
file = "main.fish"
run = ["/usr/bin/fish", "--no-config", "{file}", "{args}"]
version = ["/usr/bin/fish", "--version"]

[languages.zsh]
aliases = []
file = "main.zsh"
run = ["/usr/bin/zsh", "-f", "{file}", "{args}"]
version = ["/usr/bin/zsh", "--version"]

[languages.perl]
aliases = ["pl"]
file = "main.pl"
run = ["/usr/bin/perl", "{file}", "{args}"]
version = ["/usr/bin/perl", "-e", "print $^V"]

[languages.ruby]
aliases = ["rb"]
file = "main.rb"
run = ["/usr/bin/ruby", "{file}", "{args}"]
version = ["/usr/bin/ruby", "--version"]
zygote = true                          # launchers/ruby.rb forks each interpreter from a zygote (Fiddle), as python3's
launcher = "ruby.rb"
prestart = ["/usr/bin/ruby", "-e", "{launcher}"]

[languages.tcl]
aliases = ["tclsh"]
file = "main.tcl"
run = ["/usr/bin/tclsh", "{file}", "{args}"]
version = ["/usr/bin/dpkg-query", "-W", "-f", "${Version}", "tcl"]

[languages.javascript]
aliases = ["js", "node", "nodejs"]
file = "main.js"
run = ["/usr/bin/node", "{file}", "{args}"]
version = ["/usr/bin/node", "--version"]
limits = { pids = 128 }
launcher = "javascript.js"
prestart = ["/usr/bin/node", "--preserve-symlinks-main", "{launcher_file}"]   # its main script: a file the init makes

[languages.go]
aliases = ["golang"]
file = "main.go"
compile = ["/usr/bin/go", "build", "-o", "{dir}/main", "{flags}", "{file}"]
compile_output = "main"
run = ["{dir}/main", "{args}"]
env = { GOCACHE = "/tmp/go-cache", GOPATH = "/tmp/go", GO111MODULE = "off", CGO_ENABLED = "0", GOTOOLCHAIN = "local" }
flags_pattern = "-race|-gcflags=[A-Za-z0-9=,_ -]+|-ldflags=[A-Za-z0-9=,._ -]+"
limits = { pids = 256 }
compile_limits = { wall_ms = 20000, cpu_ms = 30000, memory_bytes = 1073741824, pids = 512 }
version = ["/usr/bin/go", "version"]

[languages.c]
aliases = ["tcc"]
file = "main.c"
run = ["/usr/bin/tcc", "{flags}", "-run", "{file}", "{args}"]
template = { unless = "main", wrap = "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <math.h>\nint main(void) {\n{code}\n;\nreturn 0;\n}\n" }
flags_pattern = "-O[0-3s]?|-W[A-Za-z0-9=-]*|-D[A-Za-z_][A-Za-z0-9_]*(=.*)?|-std=[a-z0-9+]+|-l[a-z0-9_]+|-g|-b"
version = ["/usr/bin/tcc", "-v"]

[languages.gcc]
aliases = ["cc"]
file = "main.c"
compile = ["/usr/bin/gcc", "-o", "{dir}/main", "{file}", "{flags}", "-lm"]
compile_output = "main"
run = ["{dir}/main", "{args}"]
template = { unless = "main", wrap = "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <math.h>\nint main(void) {\n{code}\n;\nreturn 0;\n}\n" }
flags_pattern = "-O[0-3sg]?|-W[A-Za-z0-9=-]*|-D[A-Za-z_][A-Za-z0-9_]*(=.*)?|-std=[a-z0-9+]+|-l[a-z0-9_]+|-g|-f[a-z0-9-]+|-march=native|-pthread"
compile_limits = { wall_ms = 10000, cpu_ms = 10000, memory_bytes = 536870912 }
version = ["/usr/bin/gcc", "--version"]

[languages."g++"]
aliases = ["cpp", "c++", "gpp"]
file = "main.cpp"
compile = ["/usr/bin/g++", "-o", "{dir}/main", "{file}", "{flags}"]
compile_output = "main"
run = ["{dir}/main", "{args}"]
flags_pattern = "-O[0-3sg]?|-W[A-Za-z0-9=-]*|-D[A-Za-z_][A-Za-z0-9_]*(=.*)?|-std=[a-z0-9+]+|-l[a-z0-9_]+|-g|-f[a-z0-9-]+|-march=native|-pthread"
compile_limits = { wall_ms = 15000, cpu_ms = 15000, memory_bytes = 805306368 }
version = ["/usr/bin/g++", "--version"]

[languages.java]
aliases = []
file = "Main.java"
compile = ["/usr/bin/javac", "-J-Xmx256m", "-J-XX:+UseSerialGC", "-J-XX:TieredStopAtLevel=1", "-d", "{dir}", "{flags}", "{file}"]
run = ["/usr/bin/java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-cp", "{dir}", "Main", "{args}"]
template = { unless = "class ", wrap = "import java.util.*;\nimport java.io.*;\npublic class Main {\npublic static void main(String[] args) throws Exception {\n{code}\n}\n}\n" }
flags_pattern = "-Xlint(:[a-z,-]+)?|-g|-nowarn|-deprecation|--release=[0-9]+"
limits = { wall_ms = 15000, cpu_ms = 15000, memory_bytes = 1073741824, pids = 256 }
compile_limits = { wall_ms = 20000, cpu_ms = 30000, memory_bytes = 1073741824, pids = 256 }
version = ["/usr/bin/javac", "-version"]
"""#
}
