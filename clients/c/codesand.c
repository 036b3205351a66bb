/*
 * codesand.c — the C client: the unix socket, newline framing, request ids and reconnecting.
 * Turning a request into JSON and a reply into a codesand_result is in message.c.
 */
#define _POSIX_C_SOURCE 200809L

#include "codesand.h"
#include "message.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* A reply carries up to output_bytes of output twice plus JSON escapes: allow far more than that. */
#define MAX_REPLY_BYTES ((size_t)64 << 20)

struct codesand_conn {
    int fd;                 /* -1 after the daemon went away: the next call reconnects */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    long long next_id;      /* ids are unique on a connection, so a late reply can be told apart */
    char *buf;              /* bytes read and not yet consumed: buf[start..len) */
    size_t start, len, cap;
    size_t scanned;         /* bytes after start already searched for '\n': a long line is scanned once */
};

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for `events` or the deadline (-1: none) passes. */
static int wait_fd(int fd, short events, long long deadline) {
    for (;;) {
        int wait = -1;
        if (deadline >= 0) {
            long long left = deadline - now_ms();
            if (left <= 0) return CODESAND_ERR_TIMEOUT;
            wait = left > 1000000 ? 1000000 : (int)left;
        }
        struct pollfd p = { .fd = fd, .events = events };
        int n = poll(&p, 1, wait);
        if (n > 0) return 0;
        if (n < 0 && errno != EINTR) return CODESAND_ERR_SYSTEM;
    }
}

static int open_socket(const char *path) {
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    memcpy(addr.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    while (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        if (errno == EINTR) continue;
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int codesand_connect(const char *socket_path, codesand_conn **conn) {
    if (!conn) { errno = EINVAL; return CODESAND_ERR_INVALID; }
    *conn = NULL;
    const char *path = socket_path ? socket_path : getenv("CODESAND_SOCKET");
    if (!path || !*path) path = CODESAND_DEFAULT_SOCKET;
    codesand_conn *c = calloc(1, sizeof *c);
    if (!c) return CODESAND_ERR_NOMEM;
    if (strlen(path) >= sizeof c->path) { free(c); errno = ENAMETOOLONG; return CODESAND_ERR_INVALID; }
    strcpy(c->path, path);
    c->fd = open_socket(path);
    if (c->fd < 0) { int saved = errno; free(c); errno = saved; return CODESAND_ERR_CONNECT; }
    c->next_id = 1;
    *conn = c;
    return CODESAND_OK;
}

/* Forgets the connection (and any partial reply on it); the next call connects afresh. */
static void drop_connection(codesand_conn *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->start = c->len = c->scanned = 0;
}

void codesand_close(codesand_conn *conn) {
    if (!conn) return;
    drop_connection(conn);
    free(conn->buf);
    free(conn);
}

/* Writes all of data. CODESAND_ERR_CLOSED means the daemon is gone and did not get a whole line. */
static int send_all(codesand_conn *c, const char *data, size_t len, long long deadline) {
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(c->fd, data + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) { off += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(c->fd, POLLOUT, deadline);
            if (rc != 0) return rc;
            continue;
        }
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)) return CODESAND_ERR_CLOSED;
        return CODESAND_ERR_SYSTEM;
    }
    return 0;
}

/*
 * Reads the next line (without its '\n') into *line / *len; it stays valid until the next read.
 * Handles replies that arrive in any number of pieces and lines of any length up to the limit.
 */
static int read_line(codesand_conn *c, long long deadline, char **line, size_t *len) {
    for (;;) {
        char *nl = memchr(c->buf + c->start + c->scanned, '\n', c->len - c->start - c->scanned);
        if (nl) {
            *line = c->buf + c->start;
            *len = (size_t)(nl - *line);
            c->start += *len + 1;
            c->scanned = 0;
            return 0;
        }
        c->scanned = c->len - c->start;
        if (c->scanned > MAX_REPLY_BYTES) return CODESAND_ERR_TOO_LONG;
        if (c->start > 0) {  /* move the partial line to the front before reading more */
            memmove(c->buf, c->buf + c->start, c->len - c->start);
            c->len -= c->start;
            c->start = 0;
        }
        if (c->cap - c->len < 65536) {
            size_t cap = c->cap ? c->cap * 2 : 131072;
            char *grown = realloc(c->buf, cap);
            if (!grown) return CODESAND_ERR_NOMEM;
            c->buf = grown;
            c->cap = cap;
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
        if (n > 0) { c->len += (size_t)n; continue; }
        if (n == 0) return CODESAND_ERR_CLOSED;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_fd(c->fd, POLLIN, deadline);
            if (rc != 0) return rc;
            continue;
        }
        return errno == ECONNRESET ? CODESAND_ERR_CLOSED : CODESAND_ERR_SYSTEM;
    }
}

int codesand_run(codesand_conn *conn, const char *language, const char *code, const char *stdin_text,
                 int timeout_ms, codesand_result *result) {
    codesand_request req = { .language = language, .code = code, .stdin_text = stdin_text };
    return codesand_run_request(conn, &req, timeout_ms, result);
}

int codesand_run_request(codesand_conn *conn, const codesand_request *request, int timeout_ms,
                         codesand_result *result) {
    if (!result) return CODESAND_ERR_INVALID;
    memset(result, 0, sizeof *result);
    result->exit_code = -1;
    if (!conn || !request || !request->language || !request->code)
        return codesand_set_error(result, CODESAND_ERR_INVALID, "language and code are required");

    long long deadline = timeout_ms > 0 ? now_ms() + timeout_ms : -1;
    long long id = conn->next_id++;
    char *line = NULL;
    size_t line_len = 0;
    int rc = codesand_encode_request(request, id, &line, &line_len);
    if (rc != 0) return codesand_set_error(result, rc, "cannot encode the request");

    /* A daemon that restarted closed our old connection; it never saw a request we could not
     * write whole, so one retry on a fresh connection is safe. */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (conn->fd < 0 && (conn->fd = open_socket(conn->path)) < 0) {
            rc = CODESAND_ERR_CONNECT;
            break;
        }
        rc = send_all(conn, line, line_len, deadline);
        if (rc != CODESAND_ERR_CLOSED) break;
        drop_connection(conn);
    }
    free(line);
    if (rc == CODESAND_ERR_CONNECT || rc == CODESAND_ERR_SYSTEM)
        return codesand_set_error(result, rc, "%s: %s", conn->path, strerror(errno));
    if (rc != 0) return codesand_set_error(result, rc, "%s", codesand_strerror(rc));

    for (;;) {
        char *reply;
        size_t reply_len;
        rc = read_line(conn, deadline, &reply, &reply_len);
        if (rc == CODESAND_ERR_TIMEOUT) return codesand_set_error(result, rc, "no reply within %d ms", timeout_ms);
        if (rc != 0) {
            int saved = errno;
            drop_connection(conn);
            if (rc == CODESAND_ERR_SYSTEM) return codesand_set_error(result, rc, "recv: %s", strerror(saved));
            return codesand_set_error(result, rc, "%s", codesand_strerror(rc));
        }
        rc = codesand_decode_reply(reply, reply_len, id, request, result);
        if (rc == CODESAND_REPLY_NOT_OURS) continue;  /* a late reply to a call that timed out, or a notification */
        if (rc == CODESAND_ERR_PROTOCOL) drop_connection(conn);  /* after a bad line the stream is not trusted */
        return rc;
    }
}

const char *codesand_strerror(int code) {
    switch (code) {
    case CODESAND_OK: return "success";
    case CODESAND_ERR_SYSTEM: return "a system call failed";
    case CODESAND_ERR_CONNECT: return "cannot connect to the codesand socket";
    case CODESAND_ERR_TIMEOUT: return "no reply from codesandd within the timeout";
    case CODESAND_ERR_CLOSED: return "the connection to codesandd closed before the reply came";
    case CODESAND_ERR_PROTOCOL: return "codesandd sent a reply this library cannot read";
    case CODESAND_ERR_NOMEM: return "out of memory";
    case CODESAND_ERR_INVALID: return "invalid argument";
    case CODESAND_ERR_TOO_LONG: return "a reply line is longer than the 64 MiB limit";
    case CODESAND_RPC_PARSE_ERROR: return "the daemon could not parse the request";
    case CODESAND_RPC_INVALID_REQUEST: return "invalid request";
    case CODESAND_RPC_METHOD_NOT_FOUND: return "no such method";
    case CODESAND_RPC_INVALID_PARAMS: return "invalid params";
    case CODESAND_RPC_INTERNAL_ERROR: return "internal error in codesandd; safe to retry";
    case CODESAND_RPC_UNKNOWN_LANGUAGE: return "unknown language";
    case CODESAND_RPC_BUSY: return "codesandd is busy; try again later";
    case CODESAND_RPC_SHUTTING_DOWN: return "codesandd is shutting down; retry once it is back";
    case CODESAND_RPC_TOO_MANY_CONNECTIONS: return "codesandd serves too many connections (or too many of this user's); retry later";
    default: return "unknown error";
    }
}
