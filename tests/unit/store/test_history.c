/*
 * test_history.c: the per-minute counts a process keeps while Redis is
 * away (history.h): the ledger in minute order, bounded, and its flush into
 * {P}:minute:<m> against a real Redis, put back when Redis refuses it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "store/history.h"
#include "store_fixture.h"

struct res {
    int calls;
    int err;
};

static void on_flushed(int err, void *data)
{
    struct res *r = data;

    r->calls++;
    r->err = err;
}

static void minute_is_wall_ms_over_60000(void **state)
{
    assert_int_equal(history_minute(0), 0);
    assert_int_equal(history_minute(59999), 0);
    assert_int_equal(history_minute(60000), 1);
    assert_int_equal(history_minute(1700000000000ull), 28333333);
}

/* Counts of one minute add up; minutes stay in order whatever order they come in. */
static void ledger_keeps_minutes_in_order(void **state)
{
    struct history_ledger l;

    memset(&l, 0, sizeof(l));
    history_ledger_add(&l, 10, HISTORY_OFFLINE_FALLBACK, 1);
    history_ledger_add(&l, 10, HISTORY_OFFLINE_FALLBACK, 2);
    history_ledger_add(&l, 12, HISTORY_OFFLINE_SYNC, 1);
    history_ledger_add(&l, 11, HISTORY_OFFLINE_FALLBACK, 4); /* a clock stepped back */
    assert_int_equal(l.len, 3);
    assert_int_equal(l.slot[0].minute, 10);
    assert_int_equal(l.slot[0].n[HISTORY_OFFLINE_FALLBACK], 3);
    assert_int_equal(l.slot[1].minute, 11);
    assert_int_equal(l.slot[2].minute, 12);
    assert_int_equal(l.slot[2].n[HISTORY_OFFLINE_SYNC], 1);
    assert_int_equal(l.dropped, 0);
}

/* A long outage: the oldest minutes make room, and what they held is counted as dropped. */
static void full_ledger_drops_the_oldest(void **state)
{
    struct history_ledger l;

    memset(&l, 0, sizeof(l));
    for (uint64_t m = 0; m < HISTORY_LEDGER_MINUTES + 5; m++)
        history_ledger_add(&l, 100 + m, HISTORY_OFFLINE_FALLBACK, 2);
    assert_int_equal(l.len, HISTORY_LEDGER_MINUTES);
    assert_int_equal(l.slot[0].minute, 105);
    assert_int_equal(l.dropped, 10);
    /* Older than all of a full ledger: dropped at once. */
    history_ledger_add(&l, 1, HISTORY_OFFLINE_SYNC, 3);
    assert_int_equal(l.dropped, 13);
    assert_int_equal(l.slot[0].minute, 105);
}

static long long hget_int(struct store_fixture *f, const char *key, const char *field)
{
    redisReply *x = sync_cmd(f->rc, "HGET %s %s", key, field);
    long long v = x->type == REDIS_REPLY_STRING ? strtoll(x->str, NULL, 10) : -1;

    freeReplyObject(x);
    return v;
}

/* Back online: every minute gets its counts, added to what is there, kept 48 h. */
static void flush_adds_to_each_minute(void **state)
{
    struct store_fixture *f = *state;
    struct history_ledger l;
    struct res r = {0};

    memset(&l, 0, sizeof(l));
    freeReplyObject(sync_cmd(f->rc, "HSET {digest}:minute:7 fallback 5 delivered 9"));
    history_ledger_add(&l, 7, HISTORY_OFFLINE_FALLBACK, 2);
    history_ledger_add(&l, 8, HISTORY_OFFLINE_SYNC, 1);
    assert_int_equal(history_flush(f->conn, f->cfg.prefix, &l, on_flushed, &r), 0);
    assert_int_equal(l.len, 0); /* emptied at once: new counts start afresh */
    store_fixture_wait_one(f, &r.calls);
    assert_int_equal(r.err, 0);
    assert_int_equal(hget_int(f, "{digest}:minute:7", "fallback"), 7);
    assert_int_equal(hget_int(f, "{digest}:minute:7", "delivered"), 9);
    assert_int_equal(hget_int(f, "{digest}:minute:7", "sync"), -1); /* zeros are not written */
    assert_int_equal(hget_int(f, "{digest}:minute:8", "sync"), 1);
    assert_true(sync_cmd_int(f->rc, "TTL %s", "{digest}:minute:8") > 172000);
    /* Nothing to add: nothing sent, no callback. */
    assert_int_equal(history_flush(f->conn, f->cfg.prefix, &l, on_flushed, &r), 0);
    loop_run_for(&f->loop, &f->tick, 50);
    assert_int_equal(r.calls, 1);
}

/* Redis refused (a key of the wrong type): the counts are back in the ledger for later. */
static void refused_flush_puts_the_counts_back(void **state)
{
    struct store_fixture *f = *state;
    struct history_ledger l;
    struct res r = {0};

    memset(&l, 0, sizeof(l));
    freeReplyObject(sync_cmd(f->rc, "SET {digest}:minute:9 not-a-hash"));
    history_ledger_add(&l, 9, HISTORY_OFFLINE_FALLBACK, 3);
    assert_int_equal(history_flush(f->conn, f->cfg.prefix, &l, on_flushed, &r), 0);
    history_ledger_add(&l, 9, HISTORY_OFFLINE_FALLBACK, 1); /* while the flush is out */
    store_fixture_wait_one(f, &r.calls);
    assert_int_equal(r.err, DG_ERR_PROTOCOL);
    assert_int_equal(l.len, 1);
    assert_int_equal(l.slot[0].n[HISTORY_OFFLINE_FALLBACK], 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(minute_is_wall_ms_over_60000),
        cmocka_unit_test(ledger_keeps_minutes_in_order),
        cmocka_unit_test(full_ledger_drops_the_oldest),
        cmocka_unit_test_setup_teardown(flush_adds_to_each_minute, store_fixture_setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(refused_flush_puts_the_counts_back, store_fixture_setup,
                                        store_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
