# codesand's pre-start launcher for bash, run only as its zygote (README: "Zygotes"): the daemon
# starts bash once on the host as `env BASH_ENV=/dev/stdin /bin/bash /dev/null LIBRARY 3` with this
# text on its stdin (config: prestart, "{launcher_stdin}"): it runs as bash's start-up file, before bash opens
# its script. The zygote library's builtin (bash_zygote.c) serves the sandboxes from here; in each
# sandbox's fork it returns, and bash goes on as `bash main.sh args` does: it opens the snippet's
# file, inside the sandbox, and reads it from its first line. Its last argument is a placeholder:
# bash's `$_` once it returns, given bash's first `$_`. Should the builtin not load or not serve,
# the zygote exits here, before bash would run its own script (the empty /dev/null).
enable -f "$1" codesand_zygote && codesand_zygote "$2" ________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________ || exit 1
