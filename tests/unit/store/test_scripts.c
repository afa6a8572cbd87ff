/*
 * test_scripts.c: every Lua script of the schema (script.h) compiles in a
 * real Redis, has a name of its own, and writes or compares statuses only
 * by the five names of request_status.h. The scripts build those literals
 * from the same macros as the C table; the scan here catches a bare
 * literal that a later edit might add.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/buf.h"
#include "store/request_status.h"
#include "store/script.h"
#include "redis_server.h"

/* Where a Lua status literal follows, in the way the scripts write and compare status. */
static const char *const status_contexts[] = {
    "'status', '",               /* HSET … 'status', '<name>' */
    "st == '",        "st ~= '", /* the HGET status kept in st */
    "'status') == '",            /* HGET … 'status') == '<name>' */
    "'status') ~= '",
};

/*
 * Checks every status literal of lua: unknown ones are counted in *bad,
 * and used[] marks the statuses seen. Returns the literals checked.
 */
static int scan_statuses(const char *lua, int *bad, bool used[REQUEST_STATUS_COUNT])
{
    int n = 0;

    for (size_t c = 0; c < ARRAY_SIZE(status_contexts); c++) {
        const char *ctx = status_contexts[c];

        for (const char *p = strstr(lua, ctx); p; p = strstr(p + 1, ctx)) {
            const char *lit = p + strlen(ctx), *end = strchr(lit, '\'');
            char word[32];
            enum request_status s;

            assert_non_null(end);
            snprintf(word, sizeof(word), "%.*s", (int)(end - lit), lit);
            n++;
            if (request_status_parse(word, &s) == 0)
                used[s] = true;
            else
                (*bad)++;
        }
    }
    return n;
}

/* The scan itself finds a misspelt or invented status (so the test below can fail). */
static void scan_flags_unknown_status(void **state)
{
    bool used[REQUEST_STATUS_COUNT] = {false};
    int bad = 0;

    assert_int_equal(
        scan_statuses("redis.call('HSET', KEYS[1], 'status', 'done')\n"
                      "if st == 'deliverd' then return 1 end\n"
                      "if redis.call('HGET', KEYS[1], 'status') == 'queued' then end\n",
                      &bad, used),
        3);
    assert_int_equal(bad, 2);
    assert_true(used[REQUEST_STATUS_QUEUED]);
}

static void every_status_literal_is_a_known_status(void **state)
{
    bool used[REQUEST_STATUS_COUNT] = {false};
    int bad = 0, checked = 0;

    for (const struct store_script *const *s = store_scripts; *s; s++) {
        int before = bad;

        checked += scan_statuses((*s)->lua, &bad, used);
        if (bad != before)
            fail_msg("script %s uses a status that request_status.h does not name", (*s)->name);
    }
    assert_true(checked >= REQUEST_STATUS_COUNT);
    /* Each status is written or tested somewhere: the scan saw the scripts' real uses. */
    for (int i = 0; i < REQUEST_STATUS_COUNT; i++)
        assert_true(used[i]);
}

static void names_are_unique_and_lengths_right(void **state)
{
    size_t n = 0;

    for (const struct store_script *const *s = store_scripts; *s; s++, n++) {
        assert_true(strlen((*s)->name) > 0);
        assert_int_equal((*s)->len, strlen((*s)->lua));
        for (const struct store_script *const *t = store_scripts; t != s; t++)
            assert_string_not_equal((*s)->name, (*t)->name);
    }
    assert_true(n >= 13);
}

/* SCRIPT LOAD compiles each script: a syntax error in a rarely run one shows here. */
static void every_script_compiles_in_redis(void **state)
{
    struct redis_server srv;
    redisContext *rc;

    redis_server_start(&srv, false, NULL);
    rc = sync_connect(&srv, 0);
    assert_non_null(rc);
    for (const struct store_script *const *s = store_scripts; *s; s++) {
        const char *argv[] = {"SCRIPT", "LOAD", (*s)->lua};
        size_t len[] = {6, 4, (*s)->len};
        redisReply *r = redisCommandArgv(rc, 3, argv, len);

        assert_non_null(r);
        if (r->type != REDIS_REPLY_STRING)
            fail_msg("script %s: %s", (*s)->name, r->type == REDIS_REPLY_ERROR ? r->str : "?");
        assert_int_equal(r->len, 40);
        freeReplyObject(r);
    }
    redisFree(rc);
    redis_server_cleanup(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scan_flags_unknown_status),
        cmocka_unit_test(every_status_literal_is_a_known_status),
        cmocka_unit_test(names_are_unique_and_lengths_right),
        cmocka_unit_test(every_script_compiles_in_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
