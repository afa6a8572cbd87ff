/*
 * test_resp.c: the command writer of resp.h against hiredis's
 * redisFormatCommandArgv, which it replaces: the same bytes for fixed and
 * random commands (binary, empty and NUL-holding arguments, lengths that
 * cross digit counts), the C-string form, and the cap and *rc chaining.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/buf.h"
#include "core/common.h"
#include "store/resp.h"

#define RANDOM_COMMANDS 2000
#define RANDOM_MAX_ARGS 40
#define RANDOM_MAX_ARG_BYTES 1200

/* Our bytes for argv equal hiredis's. */
static void assert_same_as_hiredis(int argc, const char **argv, const size_t *argvlen)
{
    struct buf ours;
    char *theirs;
    long long n = redisFormatCommandArgv(&theirs, argc, argv, argvlen);

    assert_true(n > 0);
    buf_init(&ours, RESP_MAX_COMMAND_BYTES);
    assert_int_equal(resp_put_command(&ours, argc, (const char *const *)argv, argvlen), 0);
    assert_int_equal(ours.len, (size_t)n);
    assert_memory_equal(ours.data, theirs, (size_t)n);
    redisFreeCommand(theirs);
    buf_free(&ours);
}

static void fixed_commands_match(void **state)
{
    const char *ping[] = {"PING"};
    const char *set[] = {"SET", "{digest}:dedup:msteams:c1:a1", "req-1", "NX", "EX", "86400"};
    const char *empty[] = {"HSET", "k", "test_email", ""};
    const char *nul[] = {"SET", "k", "a\0b"};
    const size_t nul_len[] = {3, 1, 3};
    struct buf b;

    (void)state;
    assert_same_as_hiredis(1, ping, NULL);
    assert_same_as_hiredis((int)ARRAY_SIZE(set), set, NULL);
    assert_same_as_hiredis((int)ARRAY_SIZE(empty), empty, NULL);
    assert_same_as_hiredis((int)ARRAY_SIZE(nul), nul, nul_len);

    buf_init(&b, 1024);
    assert_int_equal(resp_put_command(&b, 1, ping, NULL), 0);
    assert_string_equal(b.data, "*1\r\n$4\r\nPING\r\n");
    buf_free(&b);
}

/* Argument counts and lengths of every digit count up to four, random bytes. */
static void random_commands_match(void **state)
{
    static char bytes[RANDOM_MAX_ARGS][RANDOM_MAX_ARG_BYTES];
    const char *argv[RANDOM_MAX_ARGS];
    size_t argvlen[RANDOM_MAX_ARGS];

    (void)state;
    srand(1);
    for (int t = 0; t < RANDOM_COMMANDS; t++) {
        int argc = 1 + rand() % RANDOM_MAX_ARGS;

        for (int i = 0; i < argc; i++) {
            int kind = rand() % 4;
            size_t n = kind == 0   ? 0
                       : kind == 1 ? (size_t)(rand() % 10)
                       : kind == 2 ? (size_t)(rand() % 100)
                                   : (size_t)(rand() % RANDOM_MAX_ARG_BYTES);

            for (size_t j = 0; j < n; j++)
                bytes[i][j] = (char)(rand() & 0xff);
            argv[i] = bytes[i];
            argvlen[i] = n;
        }
        assert_same_as_hiredis(argc, argv, argvlen);
    }
}

/* Over the buffer's cap: an error, and nothing more is appended once *rc is set. */
static void cap_is_an_error_and_rc_chains(void **state)
{
    const char *argv[] = {"SET", "key", "a value far longer than the cap allows"};
    struct buf b;
    size_t len;
    int rc = 0;

    (void)state;
    buf_init(&b, 16);
    assert_int_equal(resp_put_command(&b, 3, argv, NULL), DG_ERR_TOO_LARGE);
    buf_reset(&b);
    resp_put_bulk(&b, "0123456789abcdef0123", 20, &rc);
    assert_int_equal(rc, DG_ERR_TOO_LARGE);
    assert_int_equal(b.len, 0); /* a bulk string is written whole or not at all */
    rc = 0;
    resp_put_bulk(&b, "0123456789", 10, &rc); /* "$10\r\n" + 10 + "\r\n" = 17 > 16 */
    assert_int_equal(rc, DG_ERR_TOO_LARGE);
    assert_int_equal(b.len, 0);
    rc = 0;
    resp_put_bulk(&b, "012345678", 9, &rc); /* 15 bytes fit */
    assert_int_equal(rc, 0);
    assert_string_equal(buf_cstr(&b), "$9\r\n012345678\r\n");
    rc = DG_ERR_TOO_LARGE;
    len = b.len;
    resp_put_count(&b, '*', 1, &rc);
    resp_put_bulk(&b, "x", 1, &rc);
    assert_int_equal(rc, DG_ERR_TOO_LARGE);
    assert_int_equal(b.len, len);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixed_commands_match),
        cmocka_unit_test(random_commands_match),
        cmocka_unit_test(cap_is_an_error_and_rc_chains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
