/*
 * test_trim.c: the retention rule (trim.h) against a real Redis. Old
 * acknowledged entries go, exactly; the cut stops at the oldest pending or
 * unread entry of any group and says which; no group means nothing goes;
 * a big trim is stepped; the dead stream keeps its length and age limits;
 * the lag lands in the caller's minute; async and blocking agree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "store/cmd.h"
#include "store/trim.h"
#include "store_fixture.h"

#define STREAM "{digest}:requests"
#define DEAD "{digest}:dead"
#define HOUR_MS 3600000ull

/* n entries with ids first-0 … (first+n-1)-0: epoch milliseconds long past. */
static void add_old(struct store_fixture *f, const char *key, int first, int n)
{
    for (int i = 0; i < n; i++)
        redisAppendCommand(f->rc, "XADD %s %d-0 request_id r%d", key, first + i, first + i);
    for (int i = 0; i < n; i++) {
        redisReply *x;

        assert_int_equal(redisGetReply(f->rc, (void **)&x), REDIS_OK);
        assert_int_equal(x->type, REDIS_REPLY_STRING);
        freeReplyObject(x);
    }
}

static void read_as(struct store_fixture *f, const char *consumer, int count)
{
    freeReplyObject(sync_cmd(f->rc, "XREADGROUP GROUP workers %s COUNT %d STREAMS " STREAM " >",
                             consumer, count));
}

/* One step over the blocking context, as digestctl runs it. */
static void step(struct store_fixture *f, const struct trim_opts *o, struct trim_step *s)
{
    char scratch[TRIM_SCRATCH][24];
    struct store_cmd c;
    redisReply *x;

    trim_cmd(&c, "digest", o, scratch);
    x = redisCommandArgv(f->rc, c.argc, c.argv, c.argvlen);
    store_cmd_free(&c);
    if (x->type == REDIS_REPLY_ERROR)
        print_error("%s\n", x->str);
    assert_int_equal(trim_decode(x, s), 0);
    freeReplyObject(x);
}

static const struct trim_opts hour = {.older_than_ms = HOUR_MS, .count_kept = true};

static void acknowledged_old_entries_go_up_to_the_oldest_pending(void **state)
{
    struct store_fixture *f = *state;
    struct trim_step s;

    add_old(f, STREAM, 1000, 10);
    freeReplyObject(sync_cmd(f->rc, "XGROUP CREATE " STREAM " workers 0"));
    read_as(f, "c1", 6);
    freeReplyObject(sync_cmd(f->rc, "XACK " STREAM " workers 1000-0 1001-0 1002-0"));
    step(f, &hour, &s);
    assert_int_equal(s.removed, 3);
    assert_false(s.more);
    assert_int_equal(s.length, 7);
    assert_string_equal(s.reason, "pending");
    assert_string_equal(s.kept_id, "1003-0");
    assert_string_equal(s.kept_group, "workers");
    assert_string_equal(s.kept_consumer, "c1");
    assert_int_equal(s.kept_older, 7);
    /* The pending entries are all still there, unharmed. */
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", STREAM), 7);
    /* Again: nothing more to take. */
    step(f, &hour, &s);
    assert_int_equal(s.removed, 0);
}

static void unread_entries_stay_however_old(void **state)
{
    struct store_fixture *f = *state;
    struct trim_step s;

    add_old(f, STREAM, 1000, 8);
    freeReplyObject(sync_cmd(f->rc, "XGROUP CREATE " STREAM " workers 0"));
    read_as(f, "c1", 4);
    freeReplyObject(sync_cmd(f->rc, "XACK " STREAM " workers 1000-0 1001-0 1002-0 1003-0"));
    step(f, &hour, &s);
    assert_int_equal(s.removed, 4);
    assert_string_equal(s.reason, "unread");
    assert_string_equal(s.kept_id, "1004-0");
    assert_string_equal(s.kept_consumer, "");
    assert_int_equal(s.length, 4);
}

/* Without any group every entry is unread to a group made later at 0: nothing goes. */
static void no_group_means_nothing_goes(void **state)
{
    struct store_fixture *f = *state;
    struct trim_step s;

    add_old(f, STREAM, 1000, 5);
    step(f, &hour, &s);
    assert_int_equal(s.removed, 0);
    assert_string_equal(s.reason, "no_group");
    assert_int_equal(s.length, 5);
}

/* Entries younger than the cut stay; all acknowledged, the age decides. */
static void young_entries_stay(void **state)
{
    struct store_fixture *f = *state;
    struct trim_step s;

    add_old(f, STREAM, 1000, 2);
    freeReplyObject(sync_cmd(f->rc, "XADD " STREAM " * request_id new"));
    freeReplyObject(sync_cmd(f->rc, "XGROUP CREATE " STREAM " workers $"));
    step(f, &hour, &s);
    assert_int_equal(s.removed, 2);
    assert_string_equal(s.reason, "age");
    assert_int_equal(s.length, 1);
    assert_true(s.now_ms > 1700000000000ll);
}

/*
 * 2,500 to go: calls of at most TRIM_STEP (whole nodes of 100, the default
 * stream-node-max-entries), until one says it is done.
 */
static void a_big_trim_is_stepped(void **state)
{
    struct store_fixture *f = *state;
    struct trim_step s;
    long long total = 0;
    int calls = 0;

    add_old(f, STREAM, 1000, 2500);
    freeReplyObject(sync_cmd(f->rc, "XGROUP CREATE " STREAM " workers $"));
    do {
        step(f, &hour, &s);
        assert_true(s.removed <= TRIM_STEP);
        total += s.removed;
        calls++;
    } while (s.more);
    assert_int_equal(total, 2500);
    assert_true(calls >= 3 && calls <= 4);
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", STREAM), 0);
}

/* DEAD_MAX_LEN 3 of 6 entries, and DEAD_RETENTION: the oldest go, the newest stay. */
static void dead_stream_keeps_its_limits(void **state)
{
    struct store_fixture *f = *state;
    struct trim_opts o = {.dead_max_len = 3, .dead_older_than_ms = 30 * 24 * HOUR_MS};
    struct trim_step s;

    add_old(f, DEAD, 1000, 2); /* older than 30 days */
    for (int i = 0; i < 4; i++)
        freeReplyObject(sync_cmd(f->rc, "XADD " DEAD " * request_id n%d", i));
    step(f, &o, &s);
    assert_int_equal(s.dead_removed, 3);
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", DEAD), 3);
    /* Within both limits: nothing goes. */
    step(f, &o, &s);
    assert_int_equal(s.dead_removed, 0);
    /* The age alone: under a generous length, the two old ones go, the young stay. */
    freeReplyObject(sync_cmd(f->rc, "DEL " DEAD));
    add_old(f, DEAD, 1000, 2);
    freeReplyObject(sync_cmd(f->rc, "XADD " DEAD " * request_id young"));
    o.dead_max_len = 100;
    step(f, &o, &s);
    assert_int_equal(s.dead_removed, 2);
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", DEAD), 1);
}

/* The group's lag as this worker saw it, in its minute (the per-minute history). */
static void lag_goes_into_the_callers_minute(void **state)
{
    struct store_fixture *f = *state;
    struct trim_opts o = {.older_than_ms = HOUR_MS, .lag_minute = true, .minute = 42};
    struct trim_step s;
    redisReply *x;

    add_old(f, STREAM, 1000, 5);
    freeReplyObject(sync_cmd(f->rc, "XGROUP CREATE " STREAM " workers 0"));
    read_as(f, "c1", 2);
    step(f, &o, &s);
    x = sync_cmd(f->rc, "HGET {digest}:minute:42 lag");
    assert_int_equal(x->type, REDIS_REPLY_STRING);
    assert_string_equal(x->str, "3");
    freeReplyObject(x);
    assert_true(sync_cmd_int(f->rc, "TTL %s", "{digest}:minute:42") > 172000);
}

struct res {
    int calls, err;
    struct trim_step s;
};

static void on_trim(int err, const struct trim_step *s, void *data)
{
    struct res *r = data;

    r->calls++;
    r->err = err;
    if (s)
        r->s = *s;
}

static void async_run_is_the_same_step(void **state)
{
    struct store_fixture *f = *state;
    struct res r = {0};

    add_old(f, STREAM, 1000, 3);
    freeReplyObject(sync_cmd(f->rc, "XGROUP CREATE " STREAM " workers $"));
    assert_int_equal(trim_run(f->conn, f->cfg.prefix, &hour, on_trim, &r), 0);
    store_fixture_wait_one(f, &r.calls);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.s.removed, 3);
    assert_string_equal(r.s.reason, "age");
}

static void total_reports_what_was_kept_and_why(void **state)
{
    struct trim_total t = {.older_than_ms = HOUR_MS};
    struct trim_step a = {.removed = 1000, .more = true, .reason = "age"};
    struct trim_step b = {.removed = 5,
                          .length = 7,
                          .reason = "pending",
                          .cut_id = "99-0",
                          .kept_id = "12-0",
                          .kept_group = "workers",
                          .kept_consumer = "h:1",
                          .kept_older = 101};
    char text[512];

    trim_total_add(&t, &a);
    trim_total_add(&t, &b);
    store_fixture_json_text(trim_total_json(&t), text, sizeof(text));
    assert_string_equal(text, "{\"older_than_ms\":3600000,\"removed\":1005,\"dead_removed\":0,"
                              "\"steps\":2,\"length\":7,\"cut_id\":\"99-0\",\"kept\":{\"reason\":"
                              "\"pending\",\"id\":\"12-0\",\"group\":\"workers\",\"consumer\":"
                              "\"h:1\",\"older_entries\":100,\"older_entries_capped\":true}}");
}

static void decoder_refuses_other_shapes(void **state)
{
    redisReply integer = {.type = REDIS_REPLY_INTEGER, .integer = 1};
    struct trim_step s;

    assert_int_equal(trim_decode(NULL, &s), DG_ERR_UNAVAILABLE);
    assert_int_equal(trim_decode(&integer, &s), DG_ERR_PROTOCOL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, store_fixture_setup, store_fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(acknowledged_old_entries_go_up_to_the_oldest_pending),
        T(unread_entries_stay_however_old),
        T(no_group_means_nothing_goes),
        T(young_entries_stay),
        T(a_big_trim_is_stepped),
        T(dead_stream_keeps_its_limits),
        T(lag_goes_into_the_callers_minute),
        T(async_run_is_the_same_step),
        cmocka_unit_test(total_reports_what_was_kept_and_why),
        cmocka_unit_test(decoder_refuses_other_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
