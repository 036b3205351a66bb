/*
 * codesand.h — C client for codesandd, the daemon that runs untrusted code snippets for chat bots.
 *
 * For bots written in C or in anything with a C FFI (Python ctypes, Perl, Tcl…). It speaks the
 * daemon's JSON-RPC 2.0 over its unix socket (protocol.md) and is built on json-c.
 *
 *     codesand_conn *conn;
 *     codesand_result r;
 *     if (codesand_connect(NULL, &conn) != 0) { perror("codesand_connect"); return 1; }
 *     int rc = codesand_run(conn, "python3", "print(6*7)", NULL, 10000, &r);
 *     if (rc == 0) printf("%s: %s", r.status, r.stdout_text);
 *     else fprintf(stderr, "%s: %s\n", codesand_strerror(rc), r.error_message);
 *     codesand_result_free(&r);
 *     codesand_close(conn);
 *
 * A snippet's own failure (non-zero exit, signal, timeout, OOM, too much output) is not an error:
 * codesand_run returns 0 and the result says how the run ended.
 *
 * A connection is for one thread at a time: calls on it are sequential. Open one per thread. After
 * the daemon restarts, the next call on a connection reconnects by itself.
 */
#ifndef CODESAND_H
#define CODESAND_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CODESAND_DEFAULT_SOCKET "/run/codesand/codesand.sock"

/*
 * Return codes. 0 is success. The library's own failures are small negative numbers; a JSON-RPC
 * error from the daemon is returned as its code (e.g. -32001 unknown language, -32002 busy), so one
 * int says what happened and codesand_strerror names either kind.
 */
enum codesand_status {
    CODESAND_OK = 0,
    CODESAND_ERR_SYSTEM = -1,     /* a system call failed; errno says why */
    CODESAND_ERR_CONNECT = -2,    /* the socket could not be connected; errno says why */
    CODESAND_ERR_TIMEOUT = -3,    /* no reply within timeout_ms; the connection stays usable */
    CODESAND_ERR_CLOSED = -4,     /* the daemon closed the connection before replying */
    CODESAND_ERR_PROTOCOL = -5,   /* the daemon sent something that is not a reply we can read */
    CODESAND_ERR_NOMEM = -6,      /* out of memory */
    CODESAND_ERR_INVALID = -7,    /* a bad argument (NULL language or code, too long a path) */
    CODESAND_ERR_TOO_LONG = -8,   /* a reply line over the 64 MiB limit; the connection is dropped */

    /* JSON-RPC error codes (protocol.md, "Errors"), returned as they are. */
    CODESAND_RPC_PARSE_ERROR = -32700,
    CODESAND_RPC_INVALID_REQUEST = -32600,
    CODESAND_RPC_METHOD_NOT_FOUND = -32601,
    CODESAND_RPC_INVALID_PARAMS = -32602,
    CODESAND_RPC_INTERNAL_ERROR = -32603,
    CODESAND_RPC_UNKNOWN_LANGUAGE = -32001,
    CODESAND_RPC_BUSY = -32002,
    CODESAND_RPC_SHUTTING_DOWN = -32003,
    CODESAND_RPC_TOO_MANY_CONNECTIONS = -32004
};

typedef struct codesand_conn codesand_conn;

/*
 * How a run ended (protocol.md, "run"). Every pointer is owned by the result: release it with
 * codesand_result_free. Output may contain NUL bytes: use the lengths.
 */
typedef struct codesand_result {
    char *status;          /* "ok", "error", "signal", "timeout", "oom", "output_limit", "compile_error" */
    int exit_code;         /* 0–255; -1 when a signal killed the program */
    char *signal;          /* e.g. "SIGKILL"; NULL when the program exited */
    char *stdout_text;     /* NUL-terminated; stdout_len bytes before the terminator */
    size_t stdout_len;
    char *stderr_text;
    size_t stderr_len;
    int timed_out;         /* 1 when killed at wall_ms or cpu_ms */
    int oom_killed;        /* 1 when the OOM killer acted at memory_bytes */
    int truncated;         /* 1 when output passed output_bytes or output_lines */
    long long wall_ms;
    long long cpu_ms;
    long long memory_peak_bytes;

    /*
     * Compiled languages only (gcc, g++, c, go, java…): the compile stage, with the same fields
     * (stdout_text/stderr_text are the compiler's messages; its own `compile` is NULL). NULL for
     * interpreted languages. When status is "compile_error" the program did not run, the
     * top-level output is empty and compile->status says why ("error", "timeout", "oom"…).
     * Owned by the result; codesand_result_free frees it.
     */
    struct codesand_result *compile;

    /* Set when codesand_run returned non-zero: the daemon's message or the library's detail. */
    int error_code;
    char *error_message;
    char *error_data_json; /* the JSON-RPC error's "data" as JSON text, or NULL */
} codesand_result;

/*
 * Receives a chunk of a streamed run's output (protocol.md, "Streaming": one `run.output`
 * notification). stream is "stdout" or "stderr"; text holds len bytes and a NUL after them (it may
 * contain NUL bytes). Both pointers are valid only during the call. Called on the caller's thread,
 * from inside codesand_run_request, in the order the daemon sent the chunks, all before it returns.
 */
typedef void (*codesand_output_fn)(void *arg, const char *stream, const char *text, size_t len);

/*
 * The run's limits (protocol.md, "run"), X(key) for each, in the order of their fields in
 * codesand_request (libcodesand 0.1.0's order, kept for the struct's layout). Each key is both a
 * field's name and its name on the wire: the fields and the request's JSON are made from this one
 * list, and the daemon's tests check that it names exactly the daemon's limits. Units and
 * meanings: protocol.md's limits table (*_ms in milliseconds, *_bytes in bytes, the others counts).
 */
#define CODESAND_LIMITS(X) X(wall_ms) X(cpu_ms) X(memory_bytes) X(output_bytes) X(pids) X(output_lines)

/* Optional request fields for codesand_run_request. Zero / NULL means "not given". */
typedef struct codesand_request {
    const char *language;      /* required: a name or alias from the daemon's `languages` */
    const char *code;          /* required */
    const char *stdin_text;    /* the program's stdin; NULL = empty */
    const char *const *args;   /* NULL-terminated argv after the program file, or NULL */
    const char *requester;     /* who asked, e.g. "nick@#channel" */
    /* A long long for each limit of CODESAND_LIMITS (wall_ms, cpu_ms, …); 0 takes the daemon's default. */
#define CODESAND_LIMIT_FIELD(key) long long key;
    CODESAND_LIMITS(CODESAND_LIMIT_FIELD)
#undef CODESAND_LIMIT_FIELD
    /* NULL-terminated compiler flags for compiled languages, each one argv element that must match
     * the language's allow-list whole (else -32602 naming it, e.g. params.compile_flags[0]). */
    const char *const *compile_flags;
    /*
     * Non-NULL: the request asks for "stream": true and each chunk of output the daemon streams is
     * handed to on_output(on_output_arg, …) as it arrives. The result still holds the whole output.
     * Chunks of a call that already timed out are dropped with its late reply, never handed to a
     * later call's callback. NULL: no streaming (and any run.output that arrives is ignored).
     */
    codesand_output_fn on_output;
    void *on_output_arg;
} codesand_request;

/*
 * Connects to the daemon. socket_path NULL means $CODESAND_SOCKET if set, else
 * CODESAND_DEFAULT_SOCKET. On success stores a connection in *conn and returns 0; on failure returns
 * a negative code with errno set.
 */
int codesand_connect(const char *socket_path, codesand_conn **conn);

/*
 * Runs `code` in `language` with `stdin_text` (NULL = empty stdin) and fills *result.
 * timeout_ms bounds the wait for the reply (the run's own wall limit plus any queueing); 0 or less
 * waits as long as it takes. Returns 0, a CODESAND_ERR_* code or a JSON-RPC error code; on non-zero,
 * result->error_code and result->error_message say more. Always call codesand_result_free after.
 */
int codesand_run(codesand_conn *conn, const char *language, const char *code, const char *stdin_text,
                 int timeout_ms, codesand_result *result);

/* Like codesand_run, with args, requester, limits, compile flags and streaming. */
int codesand_run_request(codesand_conn *conn, const codesand_request *request, int timeout_ms,
                         codesand_result *result);

/* Frees what a result holds and zeroes it. Safe on a zeroed or already freed result. */
void codesand_result_free(codesand_result *result);

/* Closes the connection and frees it. NULL is allowed. */
void codesand_close(codesand_conn *conn);

/* The keys of CODESAND_LIMITS, in its order, then NULL: the limits this library can send. */
const char *const *codesand_limit_keys(void);

/* A short English sentence for any return code of this library, including JSON-RPC codes. */
const char *codesand_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* CODESAND_H */
