// bash's zygote: a loadable builtin (`enable -f libCodesandZygote.so codesand_zygote`) run by
// launchers/bash.sh as bash's start-up file: the daemon starts bash once on the host as `env
// BASH_ENV=/dev/stdin /bin/bash /dev/null LIBRARY 3`, the launcher's text on its stdin (so that no
// host path is in the environment its forks show). Should bash skip BASH_ENV (POSIXLY_CORRECT in
// the environment), it runs the empty /dev/null and exits. Bash reads BASH_ENV after binding its arguments
// and before opening its script. The builtin serves sandboxes there as the other zygotes do
// (zygote.c); in each sandbox's fork it returns, and bash goes on as `bash main.sh args` would: it
// opens the snippet's file (its path from the job), inside the sandbox, and reads it from line 1.
// No exec, no dynamic linking, no start-up of bash: ~1 ms of CPU less per run.
//
// What a fresh bash set from its process before BASH_ENV, and the fork has from the zygote's, is
// set again here, in the sandbox: the script's path ($0), the positional parameters, $$, PPID,
// RANDOM's seed, SECONDS, UID/EUID, SHELL and HOME where the environment has none (from the
// sandbox's passwd), HOSTNAME, PWD, the process
// group, `$_`; BASH_ENV is unset and the builtin removed. /proc/$$/environ still shows
// BASH_ENV=/dev/stdin (the zygote's environment; only CAP_SYS_RESOURCE could shorten it). Everything else (variables, options,
// traps, the environment) is what bash made of the same argv[0] and environment.
// Tests/SandboxTests/BashZygoteTests.swift compares the two ways. The bash internals used here are
// exported by Debian's bash 5.2 (its loadable builtins use them); their layouts are bash 5's.
#define _GNU_SOURCE
#include "csandbox.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct word_desc { char *word; int flags; } WORD_DESC;
typedef struct word_list { struct word_list *next; WORD_DESC *word; } WORD_LIST;
typedef int sh_builtin_func_t(WORD_LIST *);
struct builtin {
    char *name;
    sh_builtin_func_t *function;
    int flags;
    char *const *long_doc;
    const char *short_doc;
    char *handle;
};
typedef struct variable {
    char *name, *value, *exportstr;
    void *dynamic_value, *assign_func;
    int attributes, context;
} SHELL_VAR;
struct user_info {
    uid_t uid, euid;
    gid_t gid, egid;
    char *user_name, *shell, *home_dir;
};

// Weak: the library is loaded by the other interpreters too, which have none of bash's symbols.
#define BASH __attribute__((weak))
extern BASH char *dollar_vars[];
extern BASH pid_t dollar_dollar_pid, shell_pgrp;
extern BASH char *shell_script_filename;
extern BASH int bash_argv_initialized;
extern BASH time_t shell_start_time;
extern BASH struct timeval shellstart;
extern BASH struct user_info current_user;
extern BASH char *current_host_name;
extern BASH struct builtin *shell_builtins;
extern BASH int num_shell_builtins;
extern BASH SHELL_VAR *find_variable(const char *);
extern BASH SHELL_VAR *bind_variable(const char *, char *, int);
extern BASH void remember_args(WORD_LIST *, int);
extern BASH WORD_LIST *make_word_list(WORD_DESC *, WORD_LIST *);
extern BASH WORD_DESC *make_word(const char *);
extern BASH void dispose_words(WORD_LIST *);
extern BASH void set_ppid(void);
extern BASH void seedrand(void);
extern BASH void set_working_directory(char *);
extern BASH int unbind_variable(const char *);
extern BASH void array_flush(void *array);
extern BASH void get_current_user_info(void);

#define BUILTIN_ENABLED 1
#define ATT_ARRAY 4

// `$_` as bash set it at its start (its argv[0]), read when the launcher's first command loads us.
static char *initial_underscore;

int codesand_zygote_builtin_load(char *name) {
    (void)name;
    // Not loaded by a bash that lacks any of them (then `enable -f` fails and the zygote exits).
    const void *needed[] = {dollar_vars, &dollar_dollar_pid, &shell_pgrp, &shell_script_filename,
                            &bash_argv_initialized, array_flush,
                            &shell_start_time, &shellstart, &current_user, &current_host_name, &shell_builtins,
                            &num_shell_builtins, find_variable, bind_variable, remember_args, make_word_list,
                            make_word, dispose_words, set_ppid, seedrand, set_working_directory, unbind_variable,
                            get_current_user_info};
    for (size_t i = 0; i < sizeof needed / sizeof *needed; i++) {
        if (!needed[i]) return 0;
    }
    SHELL_VAR *v = find_variable("_");
    initial_underscore = v && v->value ? strdup(v->value) : NULL;
    return 1;
}

// The job's argv ("path\0arg…" on fd 3, to its end), as launchers/python3.py reads it.
static char *read_job(size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) _exit(126);
        ssize_t r = read(3, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) _exit(126);
        if (r == 0) break;
        n += (size_t)r;
        if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
    }
    close(3);
    buf[n] = 0;
    *len = n;
    return buf;
}

static void set_integer_variable(const char *name, long value) {
    SHELL_VAR *v = find_variable(name);
    if (!v) return;
    char text[32];
    snprintf(text, sizeof text, "%ld", value);
    free(v->value);
    v->value = strdup(text);
}

// The snippet's file becomes the script bash opens next (which sets $0), with its arguments.
static void take_script(char *job, size_t len) {
    const char *path = job;
    shell_script_filename = strdup(path);
    // The arguments follow the path, each after a NUL (none after the last).
    size_t count = 0;
    const char **args = malloc((len + 1) * sizeof *args);
    if (!args) _exit(126);
    for (size_t at = strlen(path); at < len; at += strlen(job + at)) args[count++] = job + ++at;
    WORD_LIST *list = NULL;
    while (count > 0) list = make_word_list(make_word(args[--count]), list);
    free(args);
    remember_args(list, 1);
    if (list) dispose_words(list);
    // BASH_ARGV and BASH_ARGC hold the zygote's arguments (bash fills them at their first use):
    // emptied, to be filled from the run's at theirs.
    const char *stacks[] = {"BASH_ARGV", "BASH_ARGC"};
    for (int i = 0; i < 2; i++) {
        SHELL_VAR *v = find_variable(stacks[i]);
        if (v && (v->attributes & ATT_ARRAY) && v->value) array_flush(v->value);
    }
    bash_argv_initialized = 0;
}

// What bash read from its process at start, read again in the sandbox.
static void take_process(void) {
    dollar_dollar_pid = getpid();
    set_ppid();
    seedrand();
    shell_pgrp = getpgrp();  // (original_pgrp stays unset, as without job control)
    gettimeofday(&shellstart, NULL);
    shell_start_time = shellstart.tv_sec;
    current_user = (struct user_info){getuid(), geteuid(), getgid(), getegid(), NULL, NULL, NULL};
    set_integer_variable("UID", (long)current_user.uid);
    set_integer_variable("EUID", (long)current_user.euid);
    get_current_user_info();
    // From the passwd entry only where the environment had none (the zygote's was root's).
    if (!getenv("SHELL") && current_user.shell) bind_variable("SHELL", current_user.shell, 0);
    if (!getenv("HOME") && current_user.home_dir) bind_variable("HOME", current_user.home_dir, 0);
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) == 0) {
        current_host_name = strdup(host);  // the zygote's may be a literal: not freed
        bind_variable("HOSTNAME", host, 0);
    }
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd)) {
        set_working_directory(cwd);
        bind_variable("PWD", cwd, 0);
    }
}

// Out of bash's table of builtins (sorted: removing one keeps it so); the library stays loaded.
static void remove_builtin(void) {
    for (int i = 0; i < num_shell_builtins; i++) {
        if (shell_builtins[i].name && strcmp(shell_builtins[i].name, "codesand_zygote") == 0) {
            memmove(&shell_builtins[i], &shell_builtins[i + 1], (size_t)(num_shell_builtins - i - 1) * sizeof *shell_builtins);
            num_shell_builtins--;
            memset(&shell_builtins[num_shell_builtins], 0, sizeof *shell_builtins);
            return;
        }
    }
}

// codesand_zygote SOCKET PLACEHOLDER: serves until the daemon is gone (then exits); returns only
// in a sandbox's fork. PLACEHOLDER's text, bash's `$_` once this returns, gets bash's first `$_`.
static int codesand_zygote_main(WORD_LIST *list) {
    if (!list || !list->next) return 2;
    int sock = atoi(list->word->word);
    if (cs_zygote_announce(sock) != 0) _exit(0);
    for (;;) {
        int served = cs_zygote_serve_one(sock);
        if (served == CS_ZYGOTE_CHILD) break;
        if (served != CS_ZYGOTE_SERVED) _exit(0);
    }
    // Named apart while it waits (ps on the host tells a waiting interpreter from a run's bash),
    // and "bash" again once it has its job.
    prctl(PR_SET_NAME, "bash (waiting)", 0, 0, 0);
    size_t len = 0;
    char *job = read_job(&len);
    prctl(PR_SET_NAME, "bash", 0, 0, 0);
    take_script(job, len);
    free(job);
    take_process();
    unbind_variable("BASH_ENV");
    char *last = list->next->word->word;
    if (initial_underscore && strlen(initial_underscore) <= strlen(last)) strcpy(last, initial_underscore);
    remove_builtin();
    return 0;
}

static char *const codesand_zygote_doc[] = {"codesand's bash zygote (launchers/bash.sh).", NULL};

struct builtin codesand_zygote_struct = {
    "codesand_zygote", codesand_zygote_main, BUILTIN_ENABLED, codesand_zygote_doc, "codesand_zygote socket placeholder", NULL,
};
