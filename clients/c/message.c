/*
 * message.c — JSON-RPC messages with json-c: a `run` request to one line, one reply line to a
 * codesand_result. No I/O here.
 */
#define _POSIX_C_SOURCE 200809L

#include "message.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Adds key: value, remembering an allocation failure (json-c returns NULL) instead of checking each. */
static void put(json_object *obj, const char *key, json_object *value, int *failed) {
    if (!value || json_object_object_add(obj, key, value) != 0) {
        json_object_put(value);
        *failed = 1;
    }
}

/* A JSON array of a NULL-terminated list of strings (args, compile_flags). */
static json_object *string_array(const char *const *strings, int *failed) {
    json_object *array = json_object_new_array();
    for (const char *const *s = strings; array && *s; s++) {
        json_object *item = json_object_new_string(*s);
        if (!item || json_object_array_add(array, item) != 0) { json_object_put(item); *failed = 1; }
    }
    return array;
}

const char *const *codesand_limit_keys(void) {
#define LIMIT_KEY(key) #key,
    static const char *const keys[] = { CODESAND_LIMITS(LIMIT_KEY) NULL };
#undef LIMIT_KEY
    return keys;
}

int codesand_encode_request(const codesand_request *r, long long id, char **line, size_t *len) {
    int failed = 0;
    json_object *req = json_object_new_object(), *params = json_object_new_object();
    if (!req || !params) { json_object_put(req); json_object_put(params); return CODESAND_ERR_NOMEM; }
    put(params, "language", json_object_new_string(r->language), &failed);
    put(params, "code", json_object_new_string(r->code), &failed);
    if (r->stdin_text) put(params, "stdin", json_object_new_string(r->stdin_text), &failed);
    if (r->requester) put(params, "requester", json_object_new_string(r->requester), &failed);
    if (r->args) put(params, "args", string_array(r->args, &failed), &failed);
    if (r->compile_flags) put(params, "compile_flags", string_array(r->compile_flags, &failed), &failed);
    if (r->on_output) put(params, "stream", json_object_new_boolean(1), &failed);
    const struct { const char *key; long long value; } limits[] = {
#define LIMIT_ENTRY(key) { #key, r->key },
        CODESAND_LIMITS(LIMIT_ENTRY)
#undef LIMIT_ENTRY
    };
    json_object *lim = NULL;
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        if (limits[i].value <= 0) continue;
        if (!lim && !(lim = json_object_new_object())) { failed = 1; break; }
        put(lim, limits[i].key, json_object_new_int64(limits[i].value), &failed);
    }
    if (lim) put(params, "limits", lim, &failed);
    put(req, "jsonrpc", json_object_new_string("2.0"), &failed);
    put(req, "id", json_object_new_int64(id), &failed);
    put(req, "method", json_object_new_string("run"), &failed);
    put(req, "params", params, &failed);

    /* PLAIN: no pretty-printing, so no raw newline; json-c escapes control characters in strings. */
    const char *text = failed ? NULL : json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    int rc = CODESAND_ERR_NOMEM;
    if (text) {
        size_t n = strlen(text);
        if ((*line = malloc(n + 1))) {
            memcpy(*line, text, n);
            (*line)[n] = '\n';
            *len = n + 1;
            rc = 0;
        }
    }
    json_object_put(req);
    return rc;
}

/* A copy of a JSON string member that may hold NUL bytes. NULL when absent, null or not a string. */
static char *copy_string(json_object *obj, const char *key, size_t *len, int *failed) {
    json_object *v;
    if (len) *len = 0;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string)) return NULL;
    size_t n = (size_t)json_object_get_string_len(v);
    char *s = malloc(n + 1);
    if (!s) { *failed = 1; return NULL; }
    memcpy(s, json_object_get_string(v), n);
    s[n] = '\0';
    if (len) *len = n;
    return s;
}

static long long get_int(json_object *obj, const char *key, long long fallback) {
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_int)) return fallback;
    return json_object_get_int64(v);
}

static int get_bool(json_object *obj, const char *key) {
    json_object *v;
    return json_object_object_get_ex(obj, key, &v) && json_object_get_boolean(v);
}

/* nested: also decode a `compile` member (the compile stage itself has none). */
static int decode_result(json_object *res, codesand_result *out, int nested) {
    int failed = 0;
    if (!json_object_is_type(res, json_type_object)) return codesand_set_error(out, CODESAND_ERR_PROTOCOL, "result is not an object");
    out->status = copy_string(res, "status", NULL, &failed);
    out->signal = copy_string(res, "signal", NULL, &failed);
    out->stdout_text = copy_string(res, "stdout", &out->stdout_len, &failed);
    out->stderr_text = copy_string(res, "stderr", &out->stderr_len, &failed);
    if (failed) { codesand_result_free(out); return CODESAND_ERR_NOMEM; }
    if (!out->status || !out->stdout_text || !out->stderr_text) {
        codesand_result_free(out);
        return codesand_set_error(out, CODESAND_ERR_PROTOCOL, "result lacks status, stdout or stderr");
    }
    out->exit_code = (int)get_int(res, "exit_code", -1);  /* null when a signal killed it */
    out->timed_out = get_bool(res, "timed_out");
    out->oom_killed = get_bool(res, "oom_killed");
    out->truncated = get_bool(res, "truncated");
    out->wall_ms = get_int(res, "wall_ms", 0);
    out->cpu_ms = get_int(res, "cpu_ms", 0);
    out->memory_peak_bytes = get_int(res, "memory_peak_bytes", 0);

    /* The compile stage has the result's own shape; a compile_error's output is only there. */
    json_object *compile;
    if (nested && json_object_object_get_ex(res, "compile", &compile) && compile) {
        if (!(out->compile = calloc(1, sizeof *out->compile))) { codesand_result_free(out); return CODESAND_ERR_NOMEM; }
        int rc = decode_result(compile, out->compile, 0);
        if (rc != 0) {
            codesand_result_free(out);
            return rc == CODESAND_ERR_NOMEM ? rc : codesand_set_error(out, rc, "result.compile is not a result");
        }
    }
    return 0;
}

static int decode_error(json_object *err, codesand_result *out) {
    json_object *data;
    long long code = get_int(err, "code", 0);
    if (code == 0) return codesand_set_error(out, CODESAND_ERR_PROTOCOL, "error reply without an integer code");
    int failed = 0;
    char *message = copy_string(err, "message", NULL, &failed);
    codesand_set_error(out, (int)code, "%s", message ? message : codesand_strerror((int)code));
    free(message);
    if (json_object_object_get_ex(err, "data", &data) && data) {
        const char *json = json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN);
        out->error_data_json = json ? strdup(json) : NULL;
    }
    return (int)code;
}

/*
 * A notification from the daemon. A `run.output` for this call goes to the request's callback; any
 * other (another call's, an unknown method: protocol.md says clients ignore those) is skipped.
 */
static int decode_notification(json_object *note, json_object *method, long long id, const codesand_request *request) {
    json_object *params, *idv, *stream, *text;
    if (!request->on_output || !json_object_is_type(method, json_type_string) ||
        strcmp(json_object_get_string(method), "run.output") != 0 ||
        !json_object_object_get_ex(note, "params", &params) ||
        !json_object_object_get_ex(params, "id", &idv) ||
        !(json_object_is_type(idv, json_type_int) && json_object_get_int64(idv) == id))
        return CODESAND_REPLY_NOT_OURS;
    if (!json_object_object_get_ex(params, "stream", &stream) || !json_object_is_type(stream, json_type_string) ||
        !json_object_object_get_ex(params, "text", &text) || !json_object_is_type(text, json_type_string))
        return CODESAND_ERR_PROTOCOL;
    /* json-c keeps a NUL after the string's bytes, so text is NUL-terminated as promised. */
    request->on_output(request->on_output_arg, json_object_get_string(stream), json_object_get_string(text),
                       (size_t)json_object_get_string_len(text));
    return CODESAND_REPLY_NOT_OURS;  /* the call goes on waiting for its reply */
}

int codesand_decode_reply(const char *line, size_t len, long long id, const codesand_request *request,
                          codesand_result *out) {
    size_t blank = 0;
    while (blank < len && is_space(line[blank])) blank++;
    if (blank == len) return CODESAND_REPLY_NOT_OURS;  /* whitespace only: not a message */
    if (len > 0x7fffffff) return codesand_set_error(out, CODESAND_ERR_PROTOCOL, "reply too long");

    json_tokener *tok = json_tokener_new_ex(64);
    if (!tok) return CODESAND_ERR_NOMEM;
#ifdef JSON_TOKENER_VALIDATE_UTF8
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
#else
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
#endif
    json_object *reply = json_tokener_parse_ex(tok, line, (int)len);
    int ok = json_tokener_get_error(tok) == json_tokener_success;
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    while (ok && end < len && is_space(line[end])) end++;
    if (!ok || end != len || !json_object_is_type(reply, json_type_object)) {
        json_object_put(reply);
        return codesand_set_error(out, CODESAND_ERR_PROTOCOL, "reply is not one JSON object");
    }

    int rc;
    json_object *version, *idv, *res, *err;
    int has_id = json_object_object_get_ex(reply, "id", &idv);
    int has_result = json_object_object_get_ex(reply, "result", &res);
    int has_error = json_object_object_get_ex(reply, "error", &err);
    json_object *method;
    if (!has_id && json_object_object_get_ex(reply, "method", &method)) {
        rc = decode_notification(reply, method, id, request);
    } else if (!json_object_object_get_ex(reply, "jsonrpc", &version) || !version ||
        strcmp(json_object_get_string(version), "2.0") != 0 || !has_id || has_result == has_error) {
        rc = codesand_set_error(out, CODESAND_ERR_PROTOCOL, "not a JSON-RPC 2.0 reply");
    } else if (idv && !(json_object_is_type(idv, json_type_int) && json_object_get_int64(idv) == id)) {
        rc = CODESAND_REPLY_NOT_OURS;
    } else if (has_error) {
        /* A null id: the daemon could not read a request. Calls here are sequential, so it is ours. */
        rc = decode_error(err, out);
    } else if (!idv) {
        rc = codesand_set_error(out, CODESAND_ERR_PROTOCOL, "a result with a null id");
    } else {
        rc = decode_result(res, out, 1);
    }
    json_object_put(reply);
    return rc;
}

int codesand_set_error(codesand_result *result, int code, const char *format, ...) {
    free(result->error_message);
    result->error_code = code;
    char buf[1024];
    va_list ap;
    va_start(ap, format);
    vsnprintf(buf, sizeof buf, format, ap);
    va_end(ap);
    result->error_message = strdup(buf);
    return code;
}

void codesand_result_free(codesand_result *r) {
    if (!r) return;
    free(r->status);
    free(r->signal);
    free(r->stdout_text);
    free(r->stderr_text);
    free(r->error_message);
    free(r->error_data_json);
    if (r->compile) {
        codesand_result_free(r->compile);
        free(r->compile);
    }
    memset(r, 0, sizeof *r);
    r->exit_code = -1;
}
