/*
 * test_procs.c: process heartbeats (procs.h) against a real Redis: the
 * record holds SPEC §5's fields with a TTL of three periods, the set is
 * scored by Redis's clock and loses members older than the TTL, a clean
 * exit removes both, and the blocking builder sends the same script.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/cmd.h"
#include "store/procs.h"
#include "store_fixture.h"

#define REC "{digest}:proc:web-1:42"
#define SET "{digest}:procs"

struct res {
    int calls;
    int err;
};

static void on_done(int err, void *data)
{
    struct res *r = data;

    r->calls++;
    r->err = err;
}

static const struct procs_beat beat = {
    .name = "web-1:42",
    .role = "worker",
    .version = "9.9.9",
    .host = "web-1",
    .listen = "127.0.0.1:3978",
    .async_mode = "true",
    .pid = 42,
    .started_ms = 1700000000000ull,
    .in_flight = 3,
    .concurrency = 256,
    .rss_bytes = 12345678,
    .jobs_done = 10,
    .jobs_failed = 2,
};

static void beat_now(struct store_fixture *f)
{
    struct res r = {0};

    assert_int_equal(procs_beat(f->conn, f->cfg.prefix, &beat, on_done, &r), 0);
    store_fixture_wait_one(f, &r.calls);
    assert_int_equal(r.err, 0);
}

static void self_name_is_host_colon_pid(void **state)
{
    char name[PROCS_MAX_NAME], host[256], want[PROCS_MAX_NAME];

    procs_self_name(name, sizeof(name));
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    snprintf(want, sizeof(want), "%s:%ld", host, (long)getpid());
    assert_string_equal(name, want);
}

static void beat_writes_the_record_and_the_set(void **state)
{
    static const char *const fields[] = {"role", "version",   "host",       "listen",
                                         "pid",  "in_flight", "jobs_failed"};
    static const char *const values[] = {"worker", "9.9.9", "web-1", "127.0.0.1:3978",
                                         "42",     "3",     "2"};
    struct store_fixture *f = *state;
    long long pttl, score, beat_ms;
    redisReply *x;

    beat_now(f);
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
        x = sync_cmd(f->rc, "HGET " REC " %s", fields[i]);
        assert_int_equal(x->type, REDIS_REPLY_STRING);
        assert_string_equal(x->str, values[i]);
        freeReplyObject(x);
    }
    x = sync_cmd(f->rc, "HMGET " REC " started_ms concurrency rss_bytes jobs_done async_mode");
    assert_string_equal(x->element[0]->str, "1700000000000");
    assert_string_equal(x->element[1]->str, "256");
    assert_string_equal(x->element[2]->str, "12345678");
    assert_string_equal(x->element[3]->str, "10");
    assert_string_equal(x->element[4]->str, "true");
    freeReplyObject(x);
    pttl = sync_cmd_int(f->rc, "PTTL %s", REC);
    assert_true(pttl > PROCS_TTL_MS - 1000 && pttl <= PROCS_TTL_MS);
    /* Scored by the beat, which is Redis's own clock. */
    x = sync_cmd(f->rc, "ZSCORE " SET " web-1:42");
    score = strtoll(x->str, NULL, 10);
    freeReplyObject(x);
    x = sync_cmd(f->rc, "HGET " REC " beat_ms");
    beat_ms = strtoll(x->str, NULL, 10);
    freeReplyObject(x);
    assert_int_equal(score, beat_ms);
    x = sync_cmd(f->rc, "TIME");
    assert_true(llabs(strtoll(x->element[0]->str, NULL, 10) * 1000 - beat_ms) < 2000);
    freeReplyObject(x);
}

/* A member older than the TTL (a process that died) leaves the set at the next beat. */
static void beat_drops_members_older_than_the_ttl(void **state)
{
    struct store_fixture *f = *state;

    freeReplyObject(sync_cmd(f->rc, "ZADD " SET " 1000 gone:1"));
    beat_now(f);
    assert_int_equal(sync_cmd_int(f->rc, "ZCARD %s", SET), 1);
}

static void remove_deletes_record_and_member(void **state)
{
    struct store_fixture *f = *state;
    struct res r = {0};

    beat_now(f);
    assert_int_equal(procs_remove(f->conn, f->cfg.prefix, "web-1:42", on_done, &r), 0);
    store_fixture_wait_one(f, &r.calls);
    assert_int_equal(r.err, 0);
    assert_int_equal(sync_cmd_int(f->rc, "EXISTS %s", REC), 0);
    assert_int_equal(sync_cmd_int(f->rc, "EXISTS %s", SET), 0);
}

/* The builder serves a blocking caller too: the same record. */
static void blocking_beat_is_the_same(void **state)
{
    struct store_fixture *f = *state;
    char scratch[PROCS_BEAT_SCRATCH][24];
    struct store_cmd c;
    redisReply *x;

    procs_beat_cmd(&c, "digest", &beat, scratch);
    x = redisCommandArgv(f->rc, c.argc, c.argv, c.argvlen);
    store_cmd_free(&c);
    if (x->type == REDIS_REPLY_ERROR)
        print_error("%s\n", x->str);
    assert_int_equal(x->type, REDIS_REPLY_INTEGER);
    freeReplyObject(x);
    assert_int_equal(sync_cmd_int(f->rc, "HLEN %s", REC), 13); /* SPEC §5: 13 fields */
}

/* A refusal (the record's key holds a string) is reported, not swallowed. */
static void refused_beat_is_an_error(void **state)
{
    struct store_fixture *f = *state;
    struct res r = {0};

    freeReplyObject(sync_cmd(f->rc, "SET " REC " x"));
    assert_int_equal(procs_beat(f->conn, f->cfg.prefix, &beat, on_done, &r), 0);
    store_fixture_wait_one(f, &r.calls);
    assert_int_equal(r.err, DG_ERR_PROTOCOL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(self_name_is_host_colon_pid),
        cmocka_unit_test_setup_teardown(beat_writes_the_record_and_the_set, store_fixture_setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(beat_drops_members_older_than_the_ttl, store_fixture_setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(remove_deletes_record_and_member, store_fixture_setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(blocking_beat_is_the_same, store_fixture_setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(refused_beat_is_an_error, store_fixture_setup,
                                        store_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
