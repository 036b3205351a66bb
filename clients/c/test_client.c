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

/* A C bot must see why gcc refused the code: the compiler's messages are in result.compile. */
static void test_a_compile_error_carries_the_compilers_messages(codesand_conn *conn) {
    codesand_result r;
    int rc = codesand_run(conn, "gcc", "int main(void) { return undeclared_name; }", NULL, 60000, &r);
    CHECK(rc == 0, "rc %d (%s): %s", rc, codesand_strerror(rc), r.error_message);
    CHECK(r.status && strcmp(r.status, "compile_error") == 0, "status %s", r.status);
    CHECK(r.stdout_len == 0 && r.stderr_len == 0, "top-level output %zu/%zu bytes", r.stdout_len, r.stderr_len);
    CHECK(r.compile != NULL, "no compile stage");
    if (r.compile) {
        CHECK(r.compile->status && strcmp(r.compile->status, "error") == 0, "compile status %s", r.compile->status);
        CHECK(r.compile->exit_code > 0, "compile exit %d", r.compile->exit_code);
        CHECK(r.compile->stderr_text && strstr(r.compile->stderr_text, "undeclared_name"), "compiler said \"%s\"",
              r.compile->stderr_text);
        CHECK(r.compile->compile == NULL, "a compile stage inside the compile stage");
    }
    codesand_result_free(&r);
    CHECK(r.compile == NULL && r.status == NULL, "codesand_result_free left the compile stage");
}

static void test_a_compiled_program_that_ran_has_an_ok_compile_stage(codesand_conn *conn) {
    codesand_result r;
    int rc = codesand_run(conn, "gcc", "puts(\"hi\");", NULL, 60000, &r);
    CHECK(rc == 0 && r.status && strcmp(r.status, "ok") == 0, "rc %d status %s", rc, r.status);
    CHECK(r.stdout_text && strcmp(r.stdout_text, "hi\n") == 0, "stdout \"%s\"", r.stdout_text);
    CHECK(r.compile && strcmp(r.compile->status, "ok") == 0 && r.compile->exit_code == 0, "compile %s",
          r.compile ? r.compile->status : "missing");
    codesand_result_free(&r);

    rc = codesand_run(conn, "python3", "print(1)", NULL, 20000, &r);
    CHECK(rc == 0 && r.compile == NULL, "rc %d: an interpreted language has no compile stage", rc);
    codesand_result_free(&r);
}

/* Each flag is one argv element for the compiler: -DMSG="a;b" defines MSG as the string a;b. */
static void test_compile_flags_reach_the_compiler(codesand_conn *conn) {
    const char *flags[] = { "-DMSG=\"a;b\"", "-DN=42", NULL };
    codesand_request req = { .language = "gcc", .code = "printf(\"%s %d\\n\", MSG, N);", .compile_flags = flags };
    codesand_result r;
    int rc = codesand_run_request(conn, &req, 60000, &r);
    CHECK(rc == 0 && r.status && strcmp(r.status, "ok") == 0, "rc %d status %s: %s %s", rc, r.status, r.error_message,
          r.compile ? r.compile->stderr_text : "");
    CHECK(r.stdout_text && strcmp(r.stdout_text, "a;b 42\n") == 0, "stdout \"%s\"", r.stdout_text);
    codesand_result_free(&r);

    const char *bad[] = { "-o/etc/passwd", NULL };
    codesand_request refused = { .language = "gcc", .code = "puts(\"x\");", .compile_flags = bad };
    rc = codesand_run_request(conn, &refused, 20000, &r);
    CHECK(rc == CODESAND_RPC_INVALID_PARAMS, "rc %d", rc);
    CHECK(r.error_message && strstr(r.error_message, "compile_flags[0]"), "message %s", r.error_message);
    codesand_result_free(&r);
}

/* Starts 30 threads that sleep and prints how many started: the pids limit must stop it short. */
static const char *const thread_counter =
    "import threading, time\n"
    "n = 0\n"
    "try:\n"
    "    for i in range(30):\n"
    "        threading.Thread(target=time.sleep, args=(1,), daemon=True).start()\n"
    "        n += 1\n"
    "except RuntimeError:\n"
    "    pass\n"
    "print(n)\n";

static void test_the_pids_limit_takes_effect(codesand_conn *conn) {
    codesand_request req = { .language = "python3", .code = thread_counter, .pids = 6 };
    codesand_result r;
    int rc = codesand_run_request(conn, &req, 20000, &r);
    long started = r.stdout_text ? strtol(r.stdout_text, NULL, 10) : -1;
    CHECK(rc == 0 && started >= 0 && started < 6, "rc %d: %ld threads started under pids=6 (stdout \"%s\")", rc, started,
          r.stdout_text);
    codesand_result_free(&r);

    req.pids = 0;  /* the daemon's default (64) lets all 30 start: the limit above was ours */
    rc = codesand_run_request(conn, &req, 20000, &r);
    CHECK(rc == 0 && r.stdout_text && strcmp(r.stdout_text, "30\n") == 0, "rc %d stdout \"%s\"", rc, r.stdout_text);
    codesand_result_free(&r);
}

/* The program sleeps after its output, so only the daemon's kill at the limit can end it in time: a
 * program that exits by itself first would rightly be "ok" with truncated set (protocol.md). */
static void test_the_output_lines_limit_takes_effect(codesand_conn *conn) {
    codesand_request req = { .language = "python3", .output_lines = 10,
                             .code = "import sys, time\nfor i in range(100): print(i)\nsys.stdout.flush(); time.sleep(30)" };
    codesand_result r;
    int rc = codesand_run_request(conn, &req, 20000, &r);
    CHECK(rc == 0 && r.status && strcmp(r.status, "output_limit") == 0 && r.truncated, "rc %d status %s truncated %d",
          rc, r.status, r.truncated);
    size_t lines = 0;
    for (size_t i = 0; r.stdout_text && i < r.stdout_len; i++) lines += r.stdout_text[i] == '\n';
    CHECK(lines <= 10 && r.stdout_text && strncmp(r.stdout_text, "0\n1\n", 4) == 0, "%zu lines kept: \"%.40s\"", lines,
          r.stdout_text);
    codesand_result_free(&r);
}

struct chunks {
    char text[256];
    size_t len;
    int count, stderr_count;
};

static void collect(void *arg, const char *stream, const char *text, size_t len) {
    struct chunks *c = arg;
    c->count++;
    if (strcmp(stream, "stderr") == 0) { c->stderr_count++; return; }
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, text, len);
        c->len += len;
    }
}

/* Two prints a while apart arrive as separate run.output chunks, before the reply. */
static void test_streamed_output_reaches_the_callback(codesand_conn *conn) {
    struct chunks got = { .len = 0 };
    codesand_request req = {
        .language = "python3",
        .code = "import sys, time\nprint(1, flush=True)\ntime.sleep(0.5)\nsys.stderr.write('e\\n')\nprint(2)",
        .on_output = collect, .on_output_arg = &got,
    };
    codesand_result r;
    int rc = codesand_run_request(conn, &req, 20000, &r);
    CHECK(rc == 0 && r.stdout_text && strcmp(r.stdout_text, "1\n2\n") == 0, "rc %d stdout \"%s\"", rc, r.stdout_text);
    CHECK(got.count >= 3 && got.stderr_count >= 1, "%d chunks, %d of stderr", got.count, got.stderr_count);
    got.text[got.len] = '\0';
    CHECK(strcmp(got.text, "1\n2\n") == 0, "streamed stdout \"%s\"", got.text);
    codesand_result_free(&r);

    /* Without a callback nothing is streamed and nothing is called. */
    struct chunks none = { .len = 0 };
    codesand_request plain = { .language = "python3", .code = "print(3)", .on_output_arg = &none };
    rc = codesand_run_request(conn, &plain, 20000, &r);
    CHECK(rc == 0 && none.count == 0, "rc %d chunks %d", rc, none.count);
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
    test_a_compile_error_carries_the_compilers_messages(conn);
    test_a_compiled_program_that_ran_has_an_ok_compile_stage(conn);
    test_compile_flags_reach_the_compiler(conn);
    test_the_pids_limit_takes_effect(conn);
    test_the_output_lines_limit_takes_effect(conn);
    test_streamed_output_reaches_the_callback(conn);
    codesand_close(conn);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_client: all checks passed\n");
    return 0;
}
