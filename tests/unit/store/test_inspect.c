/*
 * test_inspect.c: queue inspection and repair (inspect.h) against a real
 * redis-server: the snapshot, a request's record and the requeue of a dead
 * job, each through the async call on a redis_conn and through the same
 * command and decoder on a blocking hiredis context (digestctl's way),
 * which must answer the very same JSON.
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
#include <json-c/json.h>

#include "config.h"
#include "core/buf.h"
#include "core/log.h"
#include "metrics.h"
#include "store/cmd.h"
#include "store/inspect.h"
#include "store/redis.h"
#include "redis_server.h"

#define STREAM "{digest}:requests"
#define DEAD "{digest}:dead"
#define REC "{digest}:req:"
#define CONV "msteams:19:abc@thread.v2"

struct fixture {
    uv_loop_t loop;
    uv_timer_t tick;
    struct config cfg;
    struct metrics *metrics;
    struct redis_server srv;
    struct redis_conn *conn;
    redisContext *rc; /* blocking: lay out and check Redis, and the sync path */
    bool stopped;
};

/* What a callback reported (JSON as text, copied out). */
struct res {
    int calls;
    int err;
    bool got; /* an answer (JSON or stream id) came */
    char text[2048];
};

static bool is_ready(void *arg)
{
    return redis_conn_ready(arg);
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

/* JSON (taken) as compact text into out; "" for NULL. */
static void json_text(struct json_object *o, char *out, size_t size)
{
    snprintf(out, size, "%s", o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : "");
    json_object_put(o);
}

static void on_json(int err, struct json_object *out, void *data)
{
    struct res *r = data;

    r->calls++;
    r->err = err;
    r->got = out != NULL;
    json_text(out, r->text, sizeof(r->text));
}

static void on_requeue(int err, const char *stream_id, void *data)
{
    struct res *r = data;

    r->calls++;
    r->err = err;
    r->got = stream_id != NULL;
    snprintf(r->text, sizeof(r->text), "%s", stream_id ? stream_id : "");
}

/* The callback came, exactly once. */
static void wait_one(struct fixture *f, struct res *r)
{
    assert_true(loop_run_until(&f->loop, &f->tick, has_calls, r, 5000));
    loop_run_for(&f->loop, &f->tick, 20);
    assert_int_equal(r->calls, 1);
}

static void queue_async(struct fixture *f, struct res *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(inspect_queue(f->conn, f->cfg.prefix, on_json, r), 0);
    wait_one(f, r);
}

static void request_async(struct fixture *f, const char *id, struct res *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(inspect_request(f->conn, f->cfg.prefix, id, on_json, r), 0);
    wait_one(f, r);
}

static void requeue_async(struct fixture *f, const char *id, struct res *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(inspect_requeue(f->conn, f->cfg.prefix, id, on_requeue, r), 0);
    wait_one(f, r);
}

/* Sends c (freed) on the blocking context and decodes it with decode, as digestctl will. */
static int sync_json(struct fixture *f, struct store_cmd *c,
                     int (*decode)(const redisReply *, struct json_object **), char *out,
                     size_t size)
{
    redisReply *rep = redisCommandArgv(f->rc, c->argc, c->argv, c->argvlen);
    struct json_object *o;
    int err = decode(rep, &o);

    store_cmd_free(c);
    freeReplyObject(rep);
    json_text(o, out, size);
    return err;
}

/* ---- Redis layout ------------------------------------------------------ */

/* A dead entry as job_store_dead writes it; returns its id in id. */
static void dead_add(struct fixture *f, const char *request_id, char *id, size_t size)
{
    redisReply *r = sync_cmd(f->rc,
                             "XADD " DEAD " * request_id %s activity_id act-%s audience advisors "
                             "test_email t@x.example conv " CONV " created_ms 1700000000000 "
                             "stream_id 1-1 reason boom attempts 5 failed_ms 1700000009000",
                             request_id, request_id);

    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(id, size, "%s", r->str);
    freeReplyObject(r);
}

/* The record of a dead job: what the requeue resets. */
static void dead_record_set(struct fixture *f, const char *request_id, const char *dead_id)
{
    freeReplyObject(sync_cmd(f->rc,
                             "HSET " REC "%s status dead mode async audience advisors attempts 5 "
                             "last_error boom dead_id %s attempt_token n/1-1/5",
                             request_id, dead_id));
}

static void assert_hget(struct fixture *f, const char *key, const char *field, const char *want)
{
    redisReply *r = sync_cmd(f->rc, "HGET %s %s", key, field);

    if (want == NULL) {
        assert_int_equal(r->type, REDIS_REPLY_NIL);
    } else {
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_string_equal(r->str, want);
    }
    freeReplyObject(r);
}

/* The stream entry id holds exactly the job's six fields of SPEC §5, in the dead entry's order. */
static void assert_requeued_entry(struct fixture *f, const char *id, const char *request_id)
{
    char act[48];
    const char *want[] = {"request_id", request_id, "activity_id", act,
                          "audience",   "advisors", "test_email",  "t@x.example",
                          "conv",       CONV,       "created_ms",  "1700000000000"};
    redisReply *r = sync_cmd(f->rc, "XRANGE " STREAM " %s %s", id, id);

    snprintf(act, sizeof(act), "act-%s", request_id);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 1);
    sync_assert_pairs(r->element[0]->element[1], want, ARRAY_SIZE(want));
    freeReplyObject(r);
}

/* ---- the queue snapshot ------------------------------------------------- */

/* No stream yet (a fresh Redis): zeros and no group, not an error. */
static void snapshot_of_a_fresh_redis(void **state)
{
    struct fixture *f = *state;
    struct res r;

    queue_async(f, &r);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.text, "{\"length\":0,\"groups\":[],\"dead\":0}");
}

static void snapshot_counts_stream_group_and_dead(void **state)
{
    struct fixture *f = *state;
    struct json_object *o, *g, *v;
    char id[48];
    struct res r;

    for (int i = 1; i <= 3; i++)
        freeReplyObject(sync_cmd(f->rc, "XADD " STREAM " %d-1 request_id r%d", i, i));
    freeReplyObject(sync_cmd(f->rc, "XGROUP CREATE " STREAM " workers 0"));
    freeReplyObject(sync_cmd(f->rc, "XREADGROUP GROUP workers h:1 COUNT 1 STREAMS " STREAM " >"));
    dead_add(f, "d1", id, sizeof(id));
    dead_add(f, "d2", id, sizeof(id));
    queue_async(f, &r);
    assert_int_equal(r.err, 0);
    o = json_tokener_parse(r.text);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "length", &v));
    assert_int_equal(json_object_get_int64(v), 3);
    assert_true(json_object_object_get_ex(o, "dead", &v));
    assert_int_equal(json_object_get_int64(v), 2);
    assert_true(json_object_object_get_ex(o, "groups", &v));
    assert_int_equal(json_object_array_length(v), 1);
    g = json_object_array_get_idx(v, 0);
    assert_true(json_object_object_get_ex(g, "name", &v));
    assert_string_equal(json_object_get_string(v), "workers");
    assert_true(json_object_object_get_ex(g, "consumers", &v));
    assert_int_equal(json_object_get_int64(v), 1);
    assert_true(json_object_object_get_ex(g, "pending", &v));
    assert_int_equal(json_object_get_int64(v), 1);
    /* Redis's "last-delivered-id" is written with '_'; Redis 7 adds lag. */
    assert_true(json_object_object_get_ex(g, "last_delivered_id", &v));
    assert_string_equal(json_object_get_string(v), "1-1");
    assert_true(json_object_object_get_ex(g, "lag", &v));
    assert_int_equal(json_object_get_int64(v), 2);
    json_object_put(o);
}

static void snapshot_reports_a_key_of_the_wrong_type(void **state)
{
    struct fixture *f = *state;
    struct res r;

    freeReplyObject(sync_cmd(f->rc, "SET " DEAD " not-a-stream"));
    queue_async(f, &r);
    assert_int_equal(r.err, DG_ERR_PROTOCOL);
    assert_false(r.got);
}

/* ---- one request -------------------------------------------------------- */

static void request_answers_the_record_as_stored(void **state)
{
    struct fixture *f = *state;
    struct res r;

    freeReplyObject(sync_cmd(f->rc, "HSET " REC "r-1 status delivered attempts 1 conv " CONV));
    request_async(f, "r-1", &r);
    assert_int_equal(r.err, 0);
    assert_true(r.got);
    assert_string_equal(r.text,
                        "{\"status\":\"delivered\",\"attempts\":\"1\",\"conv\":\"" CONV "\"}");
}

static void request_without_record_is_none(void **state)
{
    struct fixture *f = *state;
    struct res r;

    request_async(f, "00000000-0000-4000-8000-000000000000", &r);
    assert_int_equal(r.err, 0);
    assert_false(r.got);
}

/* An id we could not have issued never becomes a key: refused at once, no callback. */
static void bad_ids_are_refused_at_submission(void **state)
{
    struct fixture *f = *state;
    char longest[INSPECT_MAX_ID + 2];
    const char *bad[] = {"", "a*b", "a b", "a:b", "{digest}", longest};
    struct res r = {0};

    memset(longest, 'a', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_false(inspect_request_id_ok(bad[i]));
        assert_int_equal(inspect_request(f->conn, f->cfg.prefix, bad[i], on_json, &r),
                         DG_ERR_INVALID);
        assert_int_equal(inspect_requeue(f->conn, f->cfg.prefix, bad[i], on_requeue, &r),
                         DG_ERR_INVALID);
    }
    longest[INSPECT_MAX_ID] = '\0';
    assert_true(inspect_request_id_ok(longest));
    assert_true(inspect_request_id_ok("0f8e2a1c-Ab-9"));
    loop_run_for(&f->loop, &f->tick, 100);
    assert_int_equal(r.calls, 0);
}

/* ---- requeue ------------------------------------------------------------ */

/* Through the record's dead_id: the job's fields go back, the dead entry and the marks go. */
static void requeue_puts_the_job_back_once(void **state)
{
    struct fixture *f = *state;
    char did[48], other[48];
    struct res r;

    dead_add(f, "r-2", did, sizeof(did));
    dead_add(f, "r-3", other, sizeof(other));
    dead_record_set(f, "r-2", did);
    requeue_async(f, "r-2", &r);
    assert_int_equal(r.err, 0);
    assert_true(r.got);
    assert_requeued_entry(f, r.text, "r-2");
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", DEAD), 1);
    assert_hget(f, REC "r-2", "status", "queued");
    assert_hget(f, REC "r-2", "attempts", "0");
    assert_hget(f, REC "r-2", "dead_id", NULL);
    assert_hget(f, REC "r-2", "attempt_token", NULL);
    assert_hget(f, REC "r-2", "last_error", "boom");
    /* Again: no longer dead. */
    requeue_async(f, "r-2", &r);
    assert_int_equal(r.err, 0);
    assert_false(r.got);
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", STREAM), 1);
}

/* The record expired (REQUEST_TTL_S): found among the newest dead entries, no stub record made. */
static void requeue_finds_a_dead_job_whose_record_expired(void **state)
{
    struct fixture *f = *state;
    char did[48];
    struct res r;

    dead_add(f, "r-4", did, sizeof(did));
    requeue_async(f, "r-4", &r);
    assert_int_equal(r.err, 0);
    assert_true(r.got);
    assert_requeued_entry(f, r.text, "r-4");
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", DEAD), 0);
    assert_int_equal(sync_cmd_int(f->rc, "EXISTS %s", REC "r-4"), 0);
}

/* Not dead, or a dead_id naming someone else's entry: nothing moves. */
static void requeue_leaves_what_is_not_dead(void **state)
{
    struct fixture *f = *state;
    char other[48];
    struct res r;

    dead_add(f, "r-6", other, sizeof(other));
    freeReplyObject(sync_cmd(f->rc, "HSET " REC "r-5 status delivered"));
    requeue_async(f, "r-5", &r);
    assert_int_equal(r.err, 0);
    assert_false(r.got);
    dead_record_set(f, "r-5", other);
    requeue_async(f, "r-5", &r);
    assert_int_equal(r.err, 0);
    assert_false(r.got);
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", DEAD), 1);
    assert_int_equal(sync_cmd_int(f->rc, "EXISTS %s", STREAM), 0);
    assert_hget(f, REC "r-5", "status", "dead");
}

static void requeued_answer_names_both_ids(void **state)
{
    char text[128];

    json_text(inspect_requeued_json("r-7", "1700-0"), text, sizeof(text));
    assert_string_equal(text, "{\"requestId\":\"r-7\",\"streamId\":\"1700-0\"}");
}

/* ---- one implementation, sync or async ---------------------------------- */

static void blocking_caller_gets_the_same_answers(void **state)
{
    struct fixture *f = *state;
    struct store_cmd c;
    char text[2048], did[48];
    const char *stream_id;
    redisReply *rep;
    struct res r;

    freeReplyObject(sync_cmd(f->rc, "XADD " STREAM " 9-1 request_id r9"));
    freeReplyObject(sync_cmd(f->rc, "XGROUP CREATE " STREAM " workers 0"));
    freeReplyObject(sync_cmd(f->rc, "HSET " REC "r-9 status queued mode async"));
    queue_async(f, &r);
    inspect_queue_cmd(&c, f->cfg.prefix);
    assert_int_equal(sync_json(f, &c, inspect_queue_decode, text, sizeof(text)), 0);
    assert_string_equal(text, r.text);
    request_async(f, "r-9", &r);
    assert_int_equal(inspect_request_cmd(&c, f->cfg.prefix, "r-9"), 0);
    assert_int_equal(sync_json(f, &c, inspect_request_decode, text, sizeof(text)), 0);
    assert_string_equal(text, r.text);
    dead_add(f, "r-10", did, sizeof(did));
    assert_int_equal(inspect_requeue_cmd(&c, f->cfg.prefix, "r-10"), 0);
    rep = redisCommandArgv(f->rc, c.argc, c.argv, c.argvlen);
    store_cmd_free(&c);
    assert_int_equal(inspect_requeue_decode(rep, &stream_id), 0);
    assert_non_null(stream_id);
    assert_requeued_entry(f, stream_id, "r-10");
    freeReplyObject(rep);
}

/* Decoders are pure: shapes they cannot read are DG_ERR_PROTOCOL, no reply is UNAVAILABLE. */
static void decoders_refuse_unexpected_replies(void **state)
{
    redisReply integer = {.type = REDIS_REPLY_INTEGER, .integer = 1};
    redisReply error = {.type = REDIS_REPLY_ERROR, .str = (char[]){"ERR x"}, .len = 5};
    struct json_object *o = (struct json_object *)&integer; /* must be reset to NULL */
    const char *id = "x";

    assert_int_equal(inspect_queue_decode(&integer, &o), DG_ERR_PROTOCOL);
    assert_null(o);
    assert_int_equal(inspect_queue_decode(&error, &o), DG_ERR_PROTOCOL);
    assert_int_equal(inspect_queue_decode(NULL, &o), DG_ERR_UNAVAILABLE);
    assert_int_equal(inspect_request_decode(&integer, &o), DG_ERR_PROTOCOL);
    assert_int_equal(inspect_request_decode(NULL, &o), DG_ERR_UNAVAILABLE);
    assert_int_equal(inspect_requeue_decode(&integer, &id), DG_ERR_PROTOCOL);
    assert_null(id);
    assert_int_equal(inspect_requeue_decode(&error, &id), DG_ERR_PROTOCOL);
    assert_int_equal(inspect_requeue_decode(NULL, &id), DG_ERR_UNAVAILABLE);
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
        cmocka_unit_test_setup_teardown(snapshot_of_a_fresh_redis, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshot_counts_stream_group_and_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshot_reports_a_key_of_the_wrong_type, setup, teardown),
        cmocka_unit_test_setup_teardown(request_answers_the_record_as_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(request_without_record_is_none, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_ids_are_refused_at_submission, setup, teardown),
        cmocka_unit_test_setup_teardown(requeue_puts_the_job_back_once, setup, teardown),
        cmocka_unit_test_setup_teardown(requeue_finds_a_dead_job_whose_record_expired, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(requeue_leaves_what_is_not_dead, setup, teardown),
        cmocka_unit_test(requeued_answer_names_both_ids),
        cmocka_unit_test_setup_teardown(blocking_caller_gets_the_same_answers, setup, teardown),
        cmocka_unit_test(decoders_refuse_unexpected_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
