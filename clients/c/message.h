/* message.h — internal: JSON-RPC messages to and from bytes. Not installed. */
#ifndef CODESAND_MESSAGE_H
#define CODESAND_MESSAGE_H

#include "codesand.h"

#include <stddef.h>

/* codesand_decode_reply: the line answers another request (a late reply after a timeout). */
#define CODESAND_REPLY_NOT_OURS 1

/*
 * Encodes a `run` request with this id as one line ending in '\n' (malloc'd into *line).
 * JSON escapes every newline inside strings, so the only '\n' is the last byte.
 */
int codesand_encode_request(const codesand_request *request, long long id, char **line, size_t *len);

/*
 * Decodes one line (without its '\n') read while waiting for the reply to `request` sent with `id`.
 * Returns 0 with *result filled from a `result`, the JSON-RPC error code with result->error_* set,
 * CODESAND_REPLY_NOT_OURS for another id or a notification (a run.output for this id is first
 * handed to request->on_output), or CODESAND_ERR_PROTOCOL / CODESAND_ERR_NOMEM.
 */
int codesand_decode_reply(const char *line, size_t len, long long id, const codesand_request *request,
                          codesand_result *result);

/* Records an error in the result (printf-style message) and returns `code`. */
int codesand_set_error(codesand_result *result, int code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

#endif
