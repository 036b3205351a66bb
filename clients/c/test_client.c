/*
 * test_client.c — runs snippets through libcodesand against a real daemon and checks the results.
 * The socket comes from $CODESAND_SOCKET (codesand_connect(NULL, …) reads it). Exit status 0 when
 * every check passed; each failure is printed.
 */
#include "codesand.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (!(cond)) {                                                \
            failures++;                                               \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                             \
            fputc('\n', stderr);                                      \
        }                                                             \
    } while (0)

static void test_print_6_times_7_prints_42(codesand_conn *conn) {
    codesand_result r;
    int rc = codesand_run(conn, "python3", "print(6*7)", NULL, 20000, &r);
    CHECK(rc == 0, "rc %d (%s): %s", rc, codesand_strerror(rc), r.error_message);
    CHECK(r.stdout_text && strcmp(r.stdout_text, "42\n") == 0, "stdout \"%s\"", r.stdout_text);
    CHECK(r.status && strcmp(r.status, "ok") == 0, "status %s", r.status);
    CHECK(r.exit_code == 0 && r.signal == NULL, "exit %d signal %s", r.exit_code, r.signal);
    codesand_result_free(&r);
}

static void test_stdin_reaches_the_program(codesand_conn *conn) {
    codesand_result r;
    int rc = codesand_run(conn, "python3", "import sys; print(sys.stdin.read().upper())", "abc", 20000, &r);
    CHECK(rc == 0 && strcmp(r.stdout_text, "ABC\n") == 0, "rc %d stdout \"%s\"", rc, r.stdout_text);
    codesand_result_free(&r);
}

static void test_a_failing_program_is_a_result_with_its_exit_code(codesand_conn *conn) {
    codesand_result r;
    int rc = codesand_run(conn, "python3", "import sys; sys.stderr.write('bad\\n'); sys.exit(3)", NULL, 20000, &r);
    CHECK(rc == 0, "rc %d", rc);
    CHECK(r.exit_code == 3 && strcmp(r.status, "error") == 0, "exit %d status %s", r.exit_code, r.status);
    CHECK(r.stderr_len == 4 && strcmp(r.stderr_text, "bad\n") == 0, "stderr \"%s\"", r.stderr_text);
    codesand_result_free(&r);
}

static void test_nul_bytes_in_output_are_kept_with_the_length(codesand_conn *conn) {
    codesand_result r;
    int rc = codesand_run(conn, "python3", "import sys; sys.stdout.write('a\\0b')", NULL, 20000, &r);
    CHECK(rc == 0 && r.stdout_len == 3 && memcmp(r.stdout_text, "a\0b", 3) == 0, "rc %d len %zu", rc, r.stdout_len);
    codesand_result_free(&r);
}

static void test_unknown_language_returns_its_json_rpc_code_and_message(codesand_conn *conn) {
    codesand_result r;
    int rc = codesand_run(conn, "cobol-9000", "x", NULL, 20000, &r);
    CHECK(rc == CODESAND_RPC_UNKNOWN_LANGUAGE, "rc %d", rc);
    CHECK(r.error_message && strstr(r.error_message, "cobol-9000"), "message %s", r.error_message);
    CHECK(r.error_data_json && strstr(r.error_data_json, "python3"), "data %s", r.error_data_json);
    CHECK(strcmp(codesand_strerror(rc), "unknown language") == 0, "strerror %s", codesand_strerror(rc));
    codesand_result_free(&r);
}

/* A reply of about a MiB arrives in many reads; the line buffer must grow and keep every byte. */
static void test_a_large_reply_is_read_whole(codesand_conn *conn) {
    codesand_request req = { .language = "python3", .code = "print('x' * 400000)", .output_bytes = 1048576 };
    codesand_result r;
    int rc = codesand_run_request(conn, &req, 20000, &r);
    CHECK(rc == 0 && r.stdout_len == 400001 && !r.truncated, "rc %d len %zu", rc, r.stdout_len);
    codesand_result_free(&r);
}

/* A call that times out leaves its late reply on the connection; the next call must skip it by id. */
static void test_a_late_reply_after_a_timeout_is_not_taken_for_the_next_one(codesand_conn *conn) {
    codesand_result r;
    int rc = codesand_run(conn, "python3", "import time; time.sleep(1); print('late')", NULL, 200, &r);
    CHECK(rc == CODESAND_ERR_TIMEOUT, "rc %d", rc);
    codesand_result_free(&r);
    rc = codesand_run(conn, "python3", "import time; time.sleep(1.5); print('mine')", NULL, 20000, &r);
    CHECK(rc == 0 && strcmp(r.stdout_text, "mine\n") == 0, "rc %d stdout \"%s\"", rc, r.stdout_text);
    codesand_result_free(&r);
}

int main(void) {
    codesand_conn *conn;
    if (codesand_connect(NULL, &conn) != 0) {
        perror("codesand_connect");
        return 2;
    }
    test_print_6_times_7_prints_42(conn);
    test_stdin_reaches_the_program(conn);
    test_a_failing_program_is_a_result_with_its_exit_code(conn);
    test_nul_bytes_in_output_are_kept_with_the_length(conn);
    test_unknown_language_returns_its_json_rpc_code_and_message(conn);
    test_a_large_reply_is_read_whole(conn);
    test_a_late_reply_after_a_timeout_is_not_taken_for_the_next_one(conn);
    codesand_close(conn);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_client: all checks passed\n");
    return 0;
}
