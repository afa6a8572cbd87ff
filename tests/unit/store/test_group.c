/*
 * test_group.c: the consumer group's creation and a consumer's exit
 * (group.h) against a real redis-server, through a bare redis_conn (not
 * the queue, which would create the group itself), and the same command
 * and reply reading from a blocking hiredis context, as digestctl will.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <uv.h>

#include <hiredis/hiredis.h>

#include "config.h"
#include "core/buf.h"
#include "core/log.h"
#include "metrics.h"
#include "store/cmd.h"
#include "store/group.h"
#include "store/redis.h"
#include "redis_server.h"

#define STREAM "{digest}:requests"

struct fixture {
    uv_loop_t loop;
    uv_timer_t tick;
    struct config cfg;
    struct metrics *metrics;
    struct redis_server srv;
    struct redis_conn *conn;
    redisContext *rc; /* blocking: lay out and check Redis */
    bool stopped;
};

/* What a callback reported. */
struct res {
    int calls;
    int err;
    char refusal[128];
    bool left;
};

static bool is_ready(void *arg)
{
    return redis_conn_ready(arg);
}

static bool is_down(void *arg)
{
    return !redis_conn_ready(arg);
}

static bool has_calls(void *arg)
{
    return ((struct res *)arg)->calls > 0;
}

static bool is_stopped(void *arg)
{
    return ((struct fixture *)arg)->stopped;
}

static void on_stopped(struct redis_conn *c, void *data)
{
    ((struct fixture *)data)->stopped = true;
}

static void on_done(int err, const char *refusal, void *data)
{
    struct res *r = data;

    r->calls++;
    r->err = err;
    snprintf(r->refusal, sizeof(r->refusal), "%s", refusal);
}

static void on_left(int err, bool left, void *data)
{
    struct res *r = data;

    r->calls++;
    r->err = err;
    r->left = left;
}

/* The callback came, exactly once. */
static void wait_one(struct fixture *f, struct res *r)
{
    assert_true(loop_run_until(&f->loop, &f->tick, has_calls, r, 5000));
    loop_run_for(&f->loop, &f->tick, 20);
    assert_int_equal(r->calls, 1);
}

static void create(struct fixture *f, struct res *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(group_create(f->conn, f->cfg.prefix, on_done, r), 0);
    wait_one(f, r);
}

static void leave(struct fixture *f, const char *consumer, struct res *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(group_leave(f->conn, f->cfg.prefix, consumer, on_left, r), 0);
    wait_one(f, r);
}

/* Consumers of the group, from XINFO CONSUMERS. */
static size_t consumers(struct fixture *f)
{
    redisReply *r = sync_cmd(f->rc, "XINFO CONSUMERS " STREAM " workers");
    size_t n;

    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    n = r->elements;
    freeReplyObject(r);
    return n;
}

/* ---- tests ------------------------------------------------------------ */

/* At 0, not $: an entry added before the group existed is still delivered. */
static void create_starts_at_zero(void **state)
{
    struct fixture *f = *state;
    struct res r;
    redisReply *rep;

    freeReplyObject(sync_cmd(f->rc, "XADD " STREAM " 1-1 request_id early"));
    create(f, &r);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.refusal, "");
    rep = sync_cmd(f->rc, "XREADGROUP GROUP workers c1 COUNT 10 STREAMS " STREAM " >");
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_string_equal(rep->element[0]->element[1]->element[0]->element[0]->str, "1-1");
    freeReplyObject(rep);
}

/* MKSTREAM: no stream yet is fine; a second create is BUSYGROUP, which is success. */
static void create_is_idempotent(void **state)
{
    struct fixture *f = *state;
    struct res r;

    create(f, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(sync_cmd_int(f->rc, "EXISTS %s", STREAM), 1);
    freeReplyObject(sync_cmd(f->rc, "XADD " STREAM " 5-1 request_id a"));
    freeReplyObject(sync_cmd(f->rc, "XREADGROUP GROUP workers c1 COUNT 1 STREAMS " STREAM " >"));
    create(f, &r);
    assert_int_equal(r.err, 0);
    /* The existing group kept its place: nothing is delivered twice. */
    {
        redisReply *rep =
            sync_cmd(f->rc, "XREADGROUP GROUP workers c2 COUNT 10 STREAMS " STREAM " >");
        assert_int_equal(rep->type, REDIS_REPLY_NIL);
        freeReplyObject(rep);
    }
}

static void create_reports_a_refusal(void **state)
{
    struct fixture *f = *state;
    struct res r;

    freeReplyObject(sync_cmd(f->rc, "SET " STREAM " not-a-stream"));
    create(f, &r);
    assert_int_equal(r.err, DG_ERR_PROTOCOL);
    assert_non_null(strstr(r.refusal, "WRONGTYPE"));
}

/* The same command and reply reading from a blocking context (digestctl's way). */
static void blocking_caller_shares_the_command(void **state)
{
    struct fixture *f = *state;
    struct store_cmd c;
    const char *refusal;

    for (int round = 0; round < 2; round++) {
        redisReply *rep;

        group_create_cmd(&c, f->cfg.prefix);
        rep = redisCommandArgv(f->rc, c.argc, c.argv, c.argvlen);
        store_cmd_free(&c);
        /* Round 1 creates, round 2 finds it: both are success. */
        assert_int_equal(group_create_result(rep, &refusal), 0);
        freeReplyObject(rep);
    }
    assert_int_equal(group_create_result(NULL, &refusal), DG_ERR_UNAVAILABLE);
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", STREAM), 0);
}

static void leave_removes_a_consumer_holding_nothing(void **state)
{
    struct fixture *f = *state;
    struct res r;

    create(f, &r);
    freeReplyObject(sync_cmd(f->rc, "XGROUP CREATECONSUMER " STREAM " workers host:1"));
    assert_int_equal(consumers(f), 1);
    leave(f, "host:1", &r);
    assert_int_equal(r.err, 0);
    assert_true(r.left);
    assert_int_equal(consumers(f), 0);
}

/* DELCONSUMER would drop its pending entries: a consumer holding one stays. */
static void leave_keeps_a_consumer_with_pending_entries(void **state)
{
    struct fixture *f = *state;
    struct res r;
    redisReply *rep;

    create(f, &r);
    freeReplyObject(sync_cmd(f->rc, "XADD " STREAM " 7-1 request_id held"));
    freeReplyObject(
        sync_cmd(f->rc, "XREADGROUP GROUP workers host:2 COUNT 1 STREAMS " STREAM " >"));
    leave(f, "host:2", &r);
    assert_int_equal(r.err, 0);
    assert_false(r.left);
    assert_int_equal(consumers(f), 1);
    rep = sync_cmd(f->rc, "XPENDING " STREAM " workers");
    assert_int_equal(rep->element[0]->integer, 1);
    freeReplyObject(rep);
}

static void calls_fail_at_submission_while_down(void **state)
{
    struct fixture *f = *state;
    struct res r = {0};

    redis_server_kill(&f->srv);
    assert_true(loop_run_until(&f->loop, &f->tick, is_down, f->conn, 5000));
    assert_int_equal(group_create(f->conn, f->cfg.prefix, on_done, &r), DG_ERR_UNAVAILABLE);
    assert_int_equal(group_leave(f->conn, f->cfg.prefix, "h:1", on_left, &r), DG_ERR_UNAVAILABLE);
    loop_run_for(&f->loop, &f->tick, 100);
    assert_int_equal(r.calls, 0);
}

/* ---- fixture ---------------------------------------------------------- */

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->tick), 0);
    config_defaults(&f->cfg);
    log_setup(LOG_LEVEL_ERROR, false);
    f->metrics = metrics_create();
    redis_server_start(&f->srv, false, NULL);
    f->cfg.redis_kind = REDIS_TCP;
    xfree(f->cfg.redis_host);
    f->cfg.redis_host = xstrdup("127.0.0.1");
    f->cfg.redis_port = f->srv.port;
    f->conn = redis_conn_create(&f->loop, &f->cfg, "test", f->metrics);
    redis_conn_start(f->conn);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 5000));
    f->rc = sync_connect(&f->srv, 0);
    assert_non_null(f->rc);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    redis_conn_stop(f->conn, on_stopped, f);
    assert_true(loop_run_until(&f->loop, &f->tick, is_stopped, f, 5000));
    redis_conn_free(f->conn);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    redisFree(f->rc);
    redis_server_cleanup(&f->srv);
    metrics_free(f->metrics);
    config_free(&f->cfg);
    xfree(f);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(create_starts_at_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(create_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(create_reports_a_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(blocking_caller_shares_the_command, setup, teardown),
        cmocka_unit_test_setup_teardown(leave_removes_a_consumer_holding_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(leave_keeps_a_consumer_with_pending_entries, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(calls_fail_at_submission_while_down, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
