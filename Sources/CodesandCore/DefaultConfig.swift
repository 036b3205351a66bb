/// The default configuration, as the commented file `codesand install` writes to
/// /etc/codesand/config.toml. A config file only needs the keys it changes: it is laid over this.
public enum DefaultConfig {
    public static let toml = #"""
# codesand configuration. Every key is shown with its default; delete what you do not change.
# Sizes are in bytes, times in milliseconds, unless the key's name says otherwise.

[socket]
path = "/run/codesand/codesand.sock"   # unix socket the daemon listens on (unless systemd passes one)
group = "codesand"                     # the socket's group: its members may run code
mode = "0660"                          # the socket's permission bits, octal

[rpc]
max_message_bytes = 1048576            # longest request line; a longer one gets -32600 and the connection closes

[limits.default]                       # what a run gets when its request names no limit
wall_ms = 5000                         # wall-clock time from the program's start
cpu_ms = 5000                          # CPU time of all its processes together
memory_bytes = 268435456               # memory of all its processes (RSS, page cache, tmpfs files)
pids = 64                              # processes and threads alive at once
output_bytes = 65536                   # stdout+stderr bytes kept; more kills the run (truncated)
output_lines = 1000                    # stdout+stderr lines kept; more kills the run (truncated)

[limits.max]                           # the most a request may ask for; more is -32602
wall_ms = 30000
cpu_ms = 30000
memory_bytes = 1073741824
pids = 1024
output_bytes = 1048576
output_lines = 100000

[pool]
size = 4                               # sandboxes running at once (0 = twice the CPU count)

[queue]
max = 64                               # requests waiting for a sandbox; more get -32002 busy
max_wait_ms = 10000                    # longest wait for a sandbox before -32002 busy

[sandbox]
state_dir = "/run/codesand"            # the daemon's runtime directory (mount points of sandboxes)
cgroup_name = "codesand"               # the slots' cgroups live under this name (v1: in each controller; v2: in the daemon's cgroup)
uid_base = 2147400000                  # sandbox n runs as uid/gid uid_base+n; none may be a host user
hostname = "sandbox"
home = "/home/sandbox"                 # the program's home and working directory (a private tmpfs)
tmpfs_bytes = 67108864                 # size cap of each private tmpfs: home, /tmp, /dev/shm
tmpfs_inodes = 16384                   # file count cap of each private tmpfs
readonly_paths = ["/usr", "/etc"]      # host directories visible read-only inside
root_links = { bin = "usr/bin", sbin = "usr/sbin", lib = "usr/lib", lib64 = "usr/lib64" }
masked_paths = ["/proc/kcore", "/proc/sysrq-trigger", "/proc/keys", "/proc/timer_list", "/proc/kallsyms", "/proc/sys", "/proc/sysvipc", "/proc/acpi", "/proc/scsi"]
file_size_bytes = 67108864             # RLIMIT_FSIZE: largest file a program may write
open_files = 256                       # RLIMIT_NOFILE
env = { PATH = "/usr/local/bin:/usr/bin:/bin", HOME = "/home/sandbox", LANG = "C.UTF-8", TMPDIR = "/tmp" }

[log]
level = "info"                         # trace, debug, info, notice, warning, error, critical
log_code = false                       # log each snippet's code (off: code is the users' business)

# Languages. Each: aliases, file (the snippet's file name in the home directory), run (argv;
# {file} is the file's path, {args} the request's args), env (added to sandbox.env), version
# (argv run once at start on the host; a language whose binary is missing is left out).
[languages.python3]
aliases = ["py", "py3", "python"]
file = "main.py"
run = ["/usr/bin/python3", "{file}", "{args}"]
env = { PYTHONUNBUFFERED = "1", PYTHONDONTWRITEBYTECODE = "1" }
version = ["/usr/bin/python3", "--version"]

[languages.bash]
aliases = []
file = "main.sh"
run = ["/bin/bash", "{file}", "{args}"]
version = ["/bin/bash", "--version"]

[languages.sh]
aliases = ["dash"]
file = "main.sh"
run = ["/bin/sh", "{file}", "{args}"]
version = ["/usr/bin/dpkg-query", "-W", "-f", "${Version}", "dash"]
"""#
}
