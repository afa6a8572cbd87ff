/*
 * test_inspect.c: queue inspection and repair (inspect.h) against a real
 * redis-server: the snapshot and its verdicts, the live processes, the
 * pending and dead listings, the per-minute history, one request's whole
 * state, consumers and their pruning, the check's facts, and the requeues,
 * each through the command and decoder on a blocking hiredis context
 * (digestctl's way) and, where digestd uses it, through the async call on
 * a redis_conn, which must answer the very same JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/buf.h"
#include "store/cmd.h"
#include "store/inspect.h"
#include "store/procs.h"
#include "store_fixture.h"

#define STREAM "{digest}:requests"
#define DEAD "{digest}:dead"
#define REC "{digest}:req:"
#define CONV "msteams:19:abc@thread.v2"
#define TEXT_MAX 16384

/* What a callback reported (JSON as text, copied out). */
struct res {
    int calls;
    int err;
    bool got; /* an answer (JSON or stream id) came */
    char text[TEXT_MAX];
};

static void on_json(int err, struct json_object *out, void *data)
{
    struct res *r = data;

    r->calls++;
    r->err = err;
    r->got = out != NULL;
    store_fixture_json_text(out, r->text, sizeof(r->text));
}

static void on_requeue(int err, const char *stream_id, void *data)
{
    struct res *r = data;

    r->calls++;
    r->err = err;
    r->got = stream_id != NULL;
    snprintf(r->text, sizeof(r->text), "%s", stream_id ? stream_id : "");
}

/* ---- reading answers ---------------------------------------------------- */

static struct json_object *parse(const char *text)
{
    struct json_object *o = json_tokener_parse(text);

    assert_non_null(o);
    return o;
}

/* o[key], which must be there (borrowed). */
static struct json_object *at(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;

    if (!json_object_object_get_ex(o, key, &v))
        print_error("no '%s' in %s\n", key, json_object_to_json_string(o));
    assert_true(json_object_object_get_ex(o, key, &v));
    return v;
}

static int64_t at_int(struct json_object *o, const char *key)
{
    struct json_object *v = at(o, key);

    assert_true(json_object_is_type(v, json_type_int));
    return json_object_get_int64(v);
}

static const char *at_str(struct json_object *o, const char *key)
{
    struct json_object *v = at(o, key);

    assert_true(json_object_is_type(v, json_type_string));
    return json_object_get_string(v);
}

static bool at_bool(struct json_object *o, const char *key)
{
    struct json_object *v = at(o, key);

    assert_true(json_object_is_type(v, json_type_boolean));
    return json_object_get_boolean(v);
}

static bool at_null(struct json_object *o, const char *key)
{
    return at(o, key) == NULL;
}

static struct json_object *idx(struct json_object *arr, size_t i)
{
    assert_true(json_object_is_type(arr, json_type_array));
    assert_true(i < json_object_array_length(arr));
    return json_object_array_get_idx(arr, i);
}

static size_t len(struct json_object *arr)
{
    assert_true(json_object_is_type(arr, json_type_array));
    return json_object_array_length(arr);
}

/* ---- Redis layout ------------------------------------------------------ */

static void cmd(struct store_fixture *f, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(f->rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        print_error("%s: %s\n", fmt, r->str);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* Redis's clock, the one every answer ages by. */
static int64_t redis_now(struct store_fixture *f)
{
    redisReply *r = sync_cmd(f->rc, "TIME");
    int64_t ms =
        strtoll(r->element[0]->str, NULL, 10) * 1000 + strtoll(r->element[1]->str, NULL, 10) / 1000;

    freeReplyObject(r);
    return ms;
}

/* A dead entry as job_store_dead writes it; returns its id in id. */
static void dead_add(struct store_fixture *f, const char *request_id, const char *reason, char *id,
                     size_t size)
{
    redisReply *r = sync_cmd(f->rc,
                             "XADD " DEAD " * request_id %s activity_id act-%s audience advisors "
                             "test_email t@x.example conv " CONV " created_ms 1700000000000 "
                             "stream_id 1-1 reason %s attempts 5 failed_ms 1700000009000",
                             request_id, request_id, reason);

    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(id, size, "%s", r->str);
    freeReplyObject(r);
}

/* The record of a dead job: what the requeue resets. */
static void dead_record_set(struct store_fixture *f, const char *request_id, const char *dead_id)
{
    cmd(f,
        "HSET " REC "%s status dead mode async audience advisors attempts 5 last_error boom "
        "dead_id %s attempt_token n/1-1/5",
        request_id, dead_id);
}

/* A live heartbeat named name with role, as digestd writes it. */
static void beat(struct store_fixture *f, const char *name, const char *role)
{
    struct procs_beat b = {.name = name,
                           .role = role,
                           .version = "0.1.0",
                           .host = "h",
                           .listen = "127.0.0.1:1",
                           .async_mode = "true",
                           .pid = 77,
                           .started_ms = 1700000000000ull,
                           .concurrency = 8};
    char scratch[PROCS_BEAT_SCRATCH][24];
    struct store_cmd c;
    redisReply *r;

    procs_beat_cmd(&c, "digest", &b, scratch);
    r = redisCommandArgv(f->rc, c.argc, c.argv, c.argvlen);
    store_cmd_free(&c);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

static void assert_hget(struct store_fixture *f, const char *key, const char *field,
                        const char *want)
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
static void assert_requeued_entry(struct store_fixture *f, const char *id, const char *request_id)
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

/* ---- running the queries ------------------------------------------------ */

static struct json_object *queue_sync(struct store_fixture *f, uint64_t claim_idle_ms)
{
    static char text[TEXT_MAX];
    struct store_cmd c;

    inspect_queue_cmd(&c, "digest", claim_idle_ms);
    assert_int_equal(store_fixture_sync_json(f, &c, inspect_queue_decode, text, sizeof(text)), 0);
    return parse(text);
}

/* Sends a builder's command with decode; the answer parsed (NULL for none). */
static struct json_object *run(struct store_fixture *f, struct store_cmd *c,
                               int (*decode)(const redisReply *, struct json_object **))
{
    static char text[TEXT_MAX];

    assert_int_equal(store_fixture_sync_json(f, c, decode, text, sizeof(text)), 0);
    return text[0] ? parse(text) : NULL;
}

/* ---- the queue snapshot ------------------------------------------------- */

/* No stream yet (a fresh Redis): zeros, no group, nobody to read: not an error. */
static void snapshot_of_a_fresh_redis(void **state)
{
    struct store_fixture *f = *state;
    struct json_object *o = queue_sync(f, 60000);

    assert_int_equal(at_int(o, "length"), 0);
    assert_true(at_null(o, "first_id"));
    assert_int_equal(len(at(o, "groups")), 0);
    assert_int_equal(len(at(o, "consumers")), 0);
    assert_int_equal(at_int(o, "dead"), 0);
    assert_true(at_null(o, "oldest_pending"));
    assert_true(at_null(o, "stuck"));
    assert_int_equal(at_int(o, "stuck_after_ms"), 120000);
    assert_int_equal(at_int(at(at(o, "rates"), "last_hour"), "enqueued"), 0);
    assert_string_equal(at_str(o, "verdict"), INSPECT_NO_CONSUMERS);
    assert_true(at_int(o, "now_ms") > 1700000000000ll);
    json_object_put(o);
}

/* A worker with a heartbeat holding two of three entries, two dead jobs. */
static void snapshot_reads_stream_group_consumers_and_dead(void **state)
{
    struct store_fixture *f = *state;
    struct json_object *o, *g, *c, *p;
    char id[48];

    for (int i = 1; i <= 3; i++)
        cmd(f, "XADD " STREAM " %d-1 request_id r%d", i, i);
    cmd(f, "XGROUP CREATE " STREAM " workers 0");
    cmd(f, "XREADGROUP GROUP workers w:1 COUNT 2 STREAMS " STREAM " >");
    beat(f, "w:1", "worker");
    dead_add(f, "d1", "upstream 400", id, sizeof(id));
    dead_add(f, "d2", "connector 403", id, sizeof(id));
    o = queue_sync(f, 3600000);
    assert_int_equal(at_int(o, "length"), 3);
    assert_string_equal(at_str(o, "first_id"), "1-1");
    assert_string_equal(at_str(o, "last_id"), "3-1");
    assert_int_equal(at_int(o, "entries_added"), 3);
    g = idx(at(o, "groups"), 0);
    assert_string_equal(at_str(g, "name"), "workers");
    assert_int_equal(at_int(g, "consumers"), 1);
    assert_int_equal(at_int(g, "pending"), 2);
    /* Redis's "last-delivered-id" is written with '_'; Redis 7 adds lag. */
    assert_string_equal(at_str(g, "last_delivered_id"), "2-1");
    assert_int_equal(at_int(g, "lag"), 1);
    c = idx(at(o, "consumers"), 0);
    assert_string_equal(at_str(c, "group"), "workers");
    assert_string_equal(at_str(c, "name"), "w:1");
    assert_int_equal(at_int(c, "pending"), 2);
    assert_true(at_int(c, "idle_ms") >= 0);
    assert_true(at_bool(c, "alive"));
    assert_int_equal(at_int(o, "live_consumers"), 1);
    p = at(o, "oldest_pending");
    assert_string_equal(at_str(p, "id"), "1-1");
    assert_string_equal(at_str(p, "consumer"), "w:1");
    assert_int_equal(at_int(p, "deliveries"), 1);
    assert_true(at_int(p, "age_ms") > 1700000000000ll); /* id 1-1: 1 ms after the epoch */
    assert_true(at_null(o, "stuck"));
    assert_int_equal(at_int(o, "dead"), 2);
    assert_string_equal(at_str(idx(at(o, "dead_recent"), 0), "request_id"), "d2");
    assert_string_equal(at_str(idx(at(o, "dead_recent"), 0), "reason"), "connector 403");
    assert_string_equal(at_str(idx(at(o, "procs"), 0), "name"), "w:1");
    assert_string_equal(at_str(o, "verdict"), INSPECT_HEALTHY);
    assert_string_equal(at_str(o, "verdict_text"), "healthy");
    json_object_put(o);
}

/* An entry idle past twice the claim idle time: stuck, with its idle time in the verdict. */
static void an_entry_idle_past_twice_the_claim_time_is_stuck(void **state)
{
    struct store_fixture *f = *state;
    struct json_object *o, *s;

    cmd(f, "XADD " STREAM " 5-1 request_id r5");
    cmd(f, "XADD " STREAM " 6-1 request_id r6");
    cmd(f, "XGROUP CREATE " STREAM " workers 0");
    cmd(f, "XREADGROUP GROUP workers w:1 COUNT 2 STREAMS " STREAM " >");
    cmd(f, "XCLAIM " STREAM " workers w:1 0 6-1 IDLE 840000"); /* 14 minutes */
    beat(f, "w:1", "worker");
    o = queue_sync(f, 60000);
    s = at(o, "stuck");
    assert_string_equal(at_str(s, "id"), "6-1");
    assert_true(at_int(s, "idle_ms") >= 840000);
    assert_string_equal(at_str(o, "verdict"), INSPECT_STUCK);
    assert_string_equal(at_str(o, "verdict_text"), "stuck: oldest pending 14m");
    /* The oldest pending is another one (5-1, just read): not what is stuck. */
    assert_string_equal(at_str(at(o, "oldest_pending"), "id"), "5-1");
    json_object_put(o);
    /* Under a longer claim time the same entry is only slow. */
    o = queue_sync(f, 3600000);
    assert_string_equal(at_str(o, "verdict"), INSPECT_HEALTHY);
    json_object_put(o);
}

/* SPEC §7: no consumers comes first: a consumer without a heartbeat is not one. */
static void no_live_consumer_comes_before_stuck(void **state)
{
    struct store_fixture *f = *state;
    struct json_object *o;

    cmd(f, "XADD " STREAM " 5-1 request_id r5");
    cmd(f, "XGROUP CREATE " STREAM " workers 0");
    cmd(f, "XREADGROUP GROUP workers gone:9 COUNT 1 STREAMS " STREAM " >");
    cmd(f, "XCLAIM " STREAM " workers gone:9 0 5-1 IDLE 840000");
    beat(f, "api:1", "api"); /* a live process, but no consumer */
    o = queue_sync(f, 60000);
    assert_false(at_bool(idx(at(o, "consumers"), 0), "alive"));
    assert_int_equal(at_int(o, "live_consumers"), 0);
    assert_non_null(at(o, "stuck"));
    assert_string_equal(at_str(o, "verdict"), INSPECT_NO_CONSUMERS);
    json_object_put(o);
}

/* The minute keys of Redis's current minute and the ones before it. */
static void minute_set(struct store_fixture *f, int ago, const char *field, long long v)
{
    cmd(f, "HSET {digest}:minute:%lld %s %lld", (long long)(redis_now(f) / 60000 - ago), field, v);
}

static void lag_rising_between_minutes_is_a_growing_backlog(void **state)
{
    struct store_fixture *f = *state;
    struct json_object *o;

    cmd(f, "XGROUP CREATE " STREAM " workers 0 MKSTREAM");
    cmd(f, "XGROUP CREATECONSUMER " STREAM " workers w:1");
    beat(f, "w:1", "worker");
    minute_set(f, 0, "lag", 12);
    minute_set(f, 1, "lag", 5);
    o = queue_sync(f, 60000);
    assert_int_equal(at_int(at(o, "lag_trend"), "current"), 12);
    assert_int_equal(at_int(at(o, "lag_trend"), "previous"), 5);
    assert_string_equal(at_str(o, "verdict"), INSPECT_BACKLOG_GROWING);
    assert_string_equal(at_str(o, "verdict_text"),
                        "backlog growing: lag 12, was 5 a minute before");
    json_object_put(o);
    /* Falling: healthy. */
    minute_set(f, 0, "lag", 3);
    o = queue_sync(f, 60000);
    assert_string_equal(at_str(o, "verdict"), INSPECT_HEALTHY);
    json_object_put(o);
    /* This minute has no sample yet: the last two minutes that do decide. */
    cmd(f, "DEL {digest}:minute:%lld", (long long)(redis_now(f) / 60000));
    minute_set(f, 1, "lag", 9);
    minute_set(f, 2, "lag", 4);
    o = queue_sync(f, 60000);
    assert_int_equal(at_int(at(o, "lag_trend"), "current"), 9);
    assert_string_equal(at_str(o, "verdict"), INSPECT_BACKLOG_GROWING);
    json_object_put(o);
}

/* Rates: this minute, the last complete one, and the hour: this minute and the 59 before. */
static void rates_sum_the_minutes(void **state)
{
    struct store_fixture *f = *state;
    struct json_object *o, *r;

    minute_set(f, 0, "enqueued", 3);
    minute_set(f, 1, "delivered", 2);
    minute_set(f, 30, "enqueued", 10);
    minute_set(f, 59, "dead", 1);
    minute_set(f, 60, "enqueued", 100); /* an hour ago: out */
    o = queue_sync(f, 60000);
    r = at(o, "rates");
    assert_int_equal(at_int(at(r, "this_minute"), "enqueued"), 3);
    assert_int_equal(at_int(at(r, "last_minute"), "delivered"), 2);
    assert_int_equal(at_int(at(r, "last_minute"), "enqueued"), 0);
    assert_int_equal(at_int(at(r, "last_hour"), "enqueued"), 13);
    assert_int_equal(at_int(at(r, "last_hour"), "delivered"), 2);
    assert_int_equal(at_int(at(r, "last_hour"), "dead"), 1);
    assert_int_equal(at_int(at(r, "last_hour"), "fallback"), 0);
    json_object_put(o);
}

static void snapshot_reports_a_key_of_the_wrong_type(void **state)
{
    struct store_fixture *f = *state;
    struct res r = {0};

    cmd(f, "SET " DEAD " not-a-stream");
    assert_int_equal(inspect_queue(f->conn, f->cfg.prefix, 60000, on_json, &r), 0);
    store_fixture_wait_one(f, &r.calls);
    assert_int_equal(r.err, DG_ERR_PROTOCOL);
    assert_false(r.got);
}

/* ---- processes --------------------------------------------------------- */

static void procs_lists_the_live_and_the_consumers_without_a_heartbeat(void **state)
{
    struct store_fixture *f = *state;
    struct store_cmd c;
    struct json_object *o, *p, *d;

    beat(f, "w:1", "worker");
    cmd(f, "ZADD {digest}:procs %lld stale:3", (long long)redis_now(f)); /* no record: stale */
    cmd(f, "XGROUP CREATE " STREAM " workers 0 MKSTREAM");
    cmd(f, "XGROUP CREATECONSUMER " STREAM " workers w:1");
    cmd(f, "XGROUP CREATECONSUMER " STREAM " workers gone:2");
    inspect_procs_cmd(&c, "digest");
    o = run(f, &c, inspect_procs_decode);
    assert_int_equal(len(at(o, "procs")), 1);
    p = idx(at(o, "procs"), 0);
    assert_string_equal(at_str(p, "name"), "w:1");
    assert_string_equal(at_str(p, "role"), "worker");
    assert_string_equal(at_str(p, "version"), "0.1.0");
    assert_string_equal(at_str(p, "async_mode"), "true");
    assert_int_equal(at_int(p, "pid"), 77);
    assert_int_equal(at_int(p, "concurrency"), 8);
    assert_int_equal(at_int(p, "started_ms"), 1700000000000ll);
    assert_true(at_int(p, "uptime_ms") > 0);
    assert_true(at_int(p, "beat_age_ms") < 5000);
    assert_int_equal(len(at(o, "dead_consumers")), 1);
    d = idx(at(o, "dead_consumers"), 0);
    assert_string_equal(at_str(d, "name"), "gone:2");
    assert_string_equal(at_str(d, "group"), "workers");
    assert_int_equal(at_int(d, "pending"), 0);
    json_object_put(o);
    /* Reading dropped the stale member. */
    assert_int_equal(sync_cmd_int(f->rc, "ZCARD %s", "{digest}:procs"), 1);
}

/* ---- pending and dead ----------------------------------------------------- */

static void pending_lists_the_oldest_with_their_requests(void **state)
{
    struct store_fixture *f = *state;
    struct store_cmd c;
    struct json_object *o, *e;

    for (int i = 1; i <= 3; i++)
        cmd(f, "XADD " STREAM " %d-1 request_id r%d", i, i);
    cmd(f, "XGROUP CREATE " STREAM " workers 0");
    cmd(f, "XREADGROUP GROUP workers w:1 COUNT 3 STREAMS " STREAM " >");
    beat(f, "w:1", "worker");
    assert_int_equal(inspect_pending_cmd(&c, "digest", 2), 0);
    o = run(f, &c, inspect_pending_decode);
    assert_true(at_bool(o, "group_exists"));
    assert_string_equal(at_str(o, "group"), "workers");
    assert_int_equal(at_int(o, "count"), 3);
    assert_int_equal(len(at(o, "entries")), 2);
    e = idx(at(o, "entries"), 0);
    assert_string_equal(at_str(e, "id"), "1-1");
    assert_string_equal(at_str(e, "request_id"), "r1");
    assert_string_equal(at_str(e, "consumer"), "w:1");
    assert_true(at_bool(e, "consumer_alive"));
    assert_int_equal(at_int(e, "deliveries"), 1);
    assert_true(at_int(e, "idle_ms") >= 0);
    json_object_put(o);
}

static void pending_without_a_group_is_empty_not_an_error(void **state)
{
    struct store_fixture *f = *state;
    struct store_cmd c;
    struct json_object *o;

    assert_int_equal(inspect_pending_cmd(&c, "digest", 20), 0);
    o = run(f, &c, inspect_pending_decode);
    assert_false(at_bool(o, "group_exists"));
    assert_int_equal(at_int(o, "count"), 0);
    json_object_put(o);
    assert_int_equal(inspect_pending_cmd(&c, "digest", 0), DG_ERR_INVALID);
    assert_int_equal(inspect_pending_cmd(&c, "digest", INSPECT_MAX_LIMIT + 1), DG_ERR_INVALID);
    assert_int_equal(inspect_dead_cmd(&c, "digest", 0), DG_ERR_INVALID);
}

static void dead_lists_the_newest_first_as_stored(void **state)
{
    struct store_fixture *f = *state;
    struct store_cmd c;
    struct json_object *o, *e;
    char id[48];

    dead_add(f, "d1", "upstream 400", id, sizeof(id));
    dead_add(f, "d2", "attempts exhausted", id, sizeof(id));
    dead_add(f, "d3", "connector 403", id, sizeof(id));
    assert_int_equal(inspect_dead_cmd(&c, "digest", 2), 0);
    o = run(f, &c, inspect_dead_decode);
    assert_int_equal(at_int(o, "count"), 3);
    assert_int_equal(len(at(o, "entries")), 2);
    e = idx(at(o, "entries"), 0);
    assert_string_equal(at_str(e, "id"), id);
    assert_string_equal(at_str(e, "request_id"), "d3");
    assert_string_equal(at_str(e, "reason"), "connector 403");
    assert_string_equal(at_str(e, "attempts"), "5");
    assert_string_equal(at_str(idx(at(o, "entries"), 1), "request_id"), "d2");
    json_object_put(o);
}

/* ---- history --------------------------------------------------------------- */

static void history_gives_every_minute_oldest_first(void **state)
{
    struct store_fixture *f = *state;
    struct store_cmd c;
    struct json_object *o, *m;
    int64_t now;

    minute_set(f, 0, "enqueued", 4);
    minute_set(f, 2, "lag", 7);
    minute_set(f, 2, "fallback", 1);
    now = redis_now(f);
    assert_int_equal(inspect_history_cmd(&c, "digest", 3), 0);
    o = run(f, &c, inspect_history_decode);
    assert_int_equal(len(at(o, "minutes")), 3);
    m = idx(at(o, "minutes"), 0);
    assert_int_equal(at_int(m, "minute"), now / 60000 - 2);
    assert_int_equal(at_int(m, "start_ms"), (now / 60000 - 2) * 60000);
    assert_int_equal(at_int(m, "lag"), 7);
    assert_int_equal(at_int(m, "fallback"), 1);
    assert_int_equal(at_int(m, "enqueued"), 0);
    assert_true(at_null(idx(at(o, "minutes"), 1), "lag"));
    assert_int_equal(at_int(idx(at(o, "minutes"), 2), "enqueued"), 4);
    json_object_put(o);
    assert_int_equal(inspect_history_cmd(&c, "digest", 0), DG_ERR_INVALID);
    assert_int_equal(inspect_history_cmd(&c, "digest", 2881), DG_ERR_INVALID);
}

/* ---- one request ------------------------------------------------------------ */

static void request_shows_record_timeline_entry_pending_and_reference(void **state)
{
    struct store_fixture *f = *state;
    struct store_cmd c;
    struct json_object *o, *t, *p;

    cmd(f, "XADD " STREAM " 1700000000000-0 request_id r-1 conv " CONV);
    cmd(f, "XGROUP CREATE " STREAM " workers 0");
    cmd(f, "XREADGROUP GROUP workers w:1 COUNT 1 STREAMS " STREAM " >");
    beat(f, "w:1", "worker");
    cmd(f, "HSET " REC "r-1 status processing mode async attempts 1 conv " CONV " created_ms "
           "1700000000000 started_ms 1700000000250 stream_id 1700000000000-0");
    cmd(f, "HSET {digest}:conv:" CONV " service_url https://smba.example/ stale 1");
    assert_int_equal(inspect_request_cmd(&c, "digest", "r-1"), 0);
    o = run(f, &c, inspect_request_decode);
    /* The record, every field as stored, at the top (what the status command reads too). */
    assert_string_equal(at_str(o, "status"), "processing");
    assert_string_equal(at_str(o, "attempts"), "1");
    assert_string_equal(at_str(o, "request_id"), "r-1");
    t = at(o, "timeline");
    assert_int_equal(len(t), 2);
    assert_string_equal(at_str(idx(t, 0), "step"), "queued");
    assert_true(at_null(idx(t, 0), "after_ms"));
    assert_string_equal(at_str(idx(t, 1), "step"), "processing");
    assert_int_equal(at_int(idx(t, 1), "after_ms"), 250);
    assert_string_equal(at_str(at(o, "entry"), "id"), "1700000000000-0");
    assert_string_equal(at_str(at(at(o, "entry"), "fields"), "request_id"), "r-1");
    p = at(o, "pending");
    assert_string_equal(at_str(p, "consumer"), "w:1");
    assert_true(at_bool(p, "consumer_alive"));
    assert_int_equal(at_int(p, "deliveries"), 1);
    assert_true(at_null(o, "dead_entry"));
    assert_string_equal(at_str(at(o, "conversation"), "stale"), "1");
    json_object_put(o);
}

/* A dead job: its dead entry, and the end on the timeline; a trimmed entry reads null. */
static void request_of_a_dead_job_shows_its_dead_entry(void **state)
{
    struct store_fixture *f = *state;
    struct store_cmd c;
    struct json_object *o, *t;
    char did[48];

    dead_add(f, "r-2", "upstream 400", did, sizeof(did));
    cmd(f,
        "HSET " REC "r-2 status failed mode async created_ms 1700000000000 started_ms "
        "1700000001000 stream_id 1700000000000-7 dead_id %s",
        did);
    assert_int_equal(inspect_request_cmd(&c, "digest", "r-2"), 0);
    o = run(f, &c, inspect_request_decode);
    assert_true(at_null(o, "entry"));
    assert_true(at_null(o, "pending"));
    assert_string_equal(at_str(at(o, "dead_entry"), "id"), did);
    assert_string_equal(at_str(at(at(o, "dead_entry"), "fields"), "reason"), "upstream 400");
    t = at(o, "timeline");
    assert_int_equal(len(t), 3);
    assert_string_equal(at_str(idx(t, 2), "step"), "failed");
    assert_int_equal(at_int(idx(t, 2), "after_ms"), 8000);
    assert_true(at_null(o, "conversation"));
    json_object_put(o);
}

static void request_without_record_is_none(void **state)
{
    struct store_fixture *f = *state;
    struct res r = {0};

    assert_int_equal(inspect_request(f->conn, f->cfg.prefix, "00000000-0000-4000-8000-000000000000",
                                     on_json, &r),
                     0);
    store_fixture_wait_one(f, &r.calls);
    assert_int_equal(r.err, 0);
    assert_false(r.got);
}

/* An id we could not have issued never becomes a key: refused at once, no callback. */
static void bad_ids_are_refused_at_submission(void **state)
{
    struct store_fixture *f = *state;
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

/* ---- consumers ------------------------------------------------------------ */

static void prune_removes_only_idle_consumers_holding_nothing_without_a_heartbeat(void **state)
{
    struct store_fixture *f = *state;
    struct store_cmd c;
    struct json_object *o, *list;
    bool seen_busy = false, seen_live = false, seen_idle = false;

    cmd(f, "XADD " STREAM " 1-1 request_id r1");
    cmd(f, "XGROUP CREATE " STREAM " workers 0");
    cmd(f, "XREADGROUP GROUP workers busy:1 COUNT 1 STREAMS " STREAM " >");
    cmd(f, "XGROUP CREATECONSUMER " STREAM " workers idle:2");
    cmd(f, "XGROUP CREATECONSUMER " STREAM " workers live:3");
    beat(f, "live:3", "worker");
    /* Listing only: nothing goes. */
    inspect_consumers_cmd(&c, "digest", false, 0);
    o = run(f, &c, inspect_consumers_decode);
    assert_int_equal(len(at(o, "consumers")), 3);
    assert_int_equal(at_int(o, "removed"), 0);
    json_object_put(o);
    /* Idle for an hour at least: none has been. */
    inspect_consumers_cmd(&c, "digest", true, 3600000);
    o = run(f, &c, inspect_consumers_decode);
    assert_int_equal(at_int(o, "removed"), 0);
    json_object_put(o);
    inspect_consumers_cmd(&c, "digest", true, 0);
    o = run(f, &c, inspect_consumers_decode);
    assert_int_equal(at_int(o, "removed"), 1);
    list = at(o, "consumers");
    for (size_t i = 0; i < len(list); i++) {
        struct json_object *e = idx(list, i);
        const char *name = at_str(e, "name");

        if (strcmp(name, "busy:1") == 0) {
            seen_busy = true;
            assert_false(at_bool(e, "removed"));
            assert_int_equal(at_int(e, "pending"), 1);
        } else if (strcmp(name, "live:3") == 0) {
            seen_live = true;
            assert_false(at_bool(e, "removed"));
            assert_true(at_bool(e, "alive"));
        } else {
            seen_idle = true;
            assert_string_equal(name, "idle:2");
            assert_true(at_bool(e, "removed"));
        }
    }
    assert_true(seen_busy && seen_live && seen_idle);
    json_object_put(o);
    /* In Redis: two consumers left, and the busy one's entry is still pending. */
    {
        redisReply *x = sync_cmd(f->rc, "XINFO CONSUMERS " STREAM " workers");
        assert_int_equal(x->elements, 2);
        freeReplyObject(x);
        x = sync_cmd(f->rc, "XPENDING " STREAM " workers");
        assert_int_equal(x->element[0]->integer, 1);
        freeReplyObject(x);
    }
}

/* ---- the check's facts ------------------------------------------------------ */

static void check_facts_read_version_newest_record_and_recent_dead(void **state)
{
    struct store_fixture *f = *state;
    struct store_cmd c;
    struct json_object *o;
    char id[48];

    inspect_check_facts_cmd(&c, "digest");
    o = run(f, &c, inspect_check_facts_decode);
    assert_true(at_null(o, "newest_entry"));
    assert_true(at_null(o, "newest_dead"));
    assert_int_equal(strncmp(at_str(o, "redis_version"), "7.", 2), 0);
    json_object_put(o);

    cmd(f, "XADD " STREAM " * request_id r-1");
    cmd(f, "XADD " STREAM " * request_id r-2");
    cmd(f, "HSET " REC "r-2 status delivered");
    dead_add(f, "d1", "upstream 400", id, sizeof(id));
    inspect_check_facts_cmd(&c, "digest");
    o = run(f, &c, inspect_check_facts_decode);
    assert_string_equal(at_str(at(o, "newest_entry"), "request_id"), "r-2");
    assert_string_equal(at_str(at(o, "newest_entry"), "record_status"), "delivered");
    assert_string_equal(at_str(at(o, "newest_dead"), "reason"), "upstream 400");
    json_object_put(o);

    cmd(f, "DEL " REC "r-2");
    inspect_check_facts_cmd(&c, "digest");
    o = run(f, &c, inspect_check_facts_decode);
    assert_true(at_null(at(o, "newest_entry"), "record_status"));
    json_object_put(o);
}

/* ---- requeue ------------------------------------------------------------ */

static void requeue_wait(struct store_fixture *f, const char *id, struct res *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(inspect_requeue(f->conn, f->cfg.prefix, id, on_requeue, r), 0);
    store_fixture_wait_one(f, &r->calls);
}

/* Through the record's dead_id: the job's fields go back, the dead entry and the marks go. */
static void requeue_puts_the_job_back_once(void **state)
{
    struct store_fixture *f = *state;
    char did[48], other[48];
    struct res r;

    dead_add(f, "r-2", "boom", did, sizeof(did));
    dead_add(f, "r-3", "boom", other, sizeof(other));
    dead_record_set(f, "r-2", did);
    requeue_wait(f, "r-2", &r);
    assert_int_equal(r.err, 0);
    assert_true(r.got);
    assert_requeued_entry(f, r.text, "r-2");
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", DEAD), 1);
    assert_hget(f, REC "r-2", "status", "queued");
    assert_hget(f, REC "r-2", "attempts", "0");
    assert_hget(f, REC "r-2", "dead_id", NULL);
    assert_hget(f, REC "r-2", "attempt_token", NULL);
    assert_hget(f, REC "r-2", "last_error", "boom");
    /* The record says it was requeued, and where the job is now. */
    assert_hget(f, REC "r-2", "stream_id", r.text);
    assert_hget(f, REC "r-2", "requeues", "1");
    {
        redisReply *x = sync_cmd(f->rc, "HGET " REC "r-2 requeued_ms");
        assert_true(llabs(strtoll(x->str, NULL, 10) - redis_now(f)) < 5000);
        freeReplyObject(x);
    }
    /* Again: no longer dead. */
    requeue_wait(f, "r-2", &r);
    assert_int_equal(r.err, 0);
    assert_false(r.got);
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", STREAM), 1);
}

/* The record expired (REQUEST_TTL_S): found among the newest dead entries, no stub record made. */
static void requeue_finds_a_dead_job_whose_record_expired(void **state)
{
    struct store_fixture *f = *state;
    char did[48];
    struct res r;

    dead_add(f, "r-4", "boom", did, sizeof(did));
    requeue_wait(f, "r-4", &r);
    assert_int_equal(r.err, 0);
    assert_true(r.got);
    assert_requeued_entry(f, r.text, "r-4");
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", DEAD), 0);
    assert_int_equal(sync_cmd_int(f->rc, "EXISTS %s", REC "r-4"), 0);
}

/* Not dead, or a dead_id naming someone else's entry: nothing moves. */
static void requeue_leaves_what_is_not_dead(void **state)
{
    struct store_fixture *f = *state;
    char other[48];
    struct res r;

    dead_add(f, "r-6", "boom", other, sizeof(other));
    cmd(f, "HSET " REC "r-5 status delivered");
    requeue_wait(f, "r-5", &r);
    assert_int_equal(r.err, 0);
    assert_false(r.got);
    dead_record_set(f, "r-5", other);
    requeue_wait(f, "r-5", &r);
    assert_int_equal(r.err, 0);
    assert_false(r.got);
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", DEAD), 1);
    assert_int_equal(sync_cmd_int(f->rc, "EXISTS %s", STREAM), 0);
    assert_hget(f, REC "r-5", "status", "dead");
}

static void requeued_answer_names_both_ids(void **state)
{
    char text[128];

    store_fixture_json_text(inspect_requeued_json("r-7", "1700-0"), text, sizeof(text));
    assert_string_equal(text, "{\"requestId\":\"r-7\",\"streamId\":\"1700-0\"}");
}

/* ---- requeue of all ------------------------------------------------------- */

struct all_res {
    int calls, err;
    struct inspect_requeue_all s;
};

static void on_all(int err, const struct inspect_requeue_all *s, void *data)
{
    struct all_res *r = data;

    r->calls++;
    r->err = err;
    r->s = *s;
}

/* Only when the count is the caller's: otherwise nothing moves (the admin route's 409). */
static void requeue_all_needs_the_count_it_was_given(void **state)
{
    struct store_fixture *f = *state;
    struct all_res r = {0};
    char id[48];

    for (int i = 0; i < 3; i++) {
        char rid[16];
        snprintf(rid, sizeof(rid), "a-%d", i);
        dead_add(f, rid, "boom", id, sizeof(id));
        dead_record_set(f, rid, id);
    }
    assert_int_equal(inspect_requeue_all(f->conn, f->cfg.prefix, 2, on_all, &r), 0);
    store_fixture_wait_one(f, &r.calls);
    assert_int_equal(r.err, 0);
    assert_true(r.s.mismatch);
    assert_int_equal(r.s.dead_now, 3);
    assert_int_equal(r.s.requeued, 0);
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", DEAD), 3);
    memset(&r, 0, sizeof(r));
    assert_int_equal(inspect_requeue_all(f->conn, f->cfg.prefix, 3, on_all, &r), 0);
    store_fixture_wait_one(f, &r.calls);
    assert_false(r.s.mismatch);
    assert_true(r.s.done);
    assert_int_equal(r.s.requeued, 3);
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", DEAD), 0);
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", STREAM), 3);
    assert_hget(f, REC "a-1", "status", "queued");
}

/* 250 dead, stepped; one dead-lettered between the steps is not part of it. */
static void requeue_all_is_stepped_and_stops_at_its_boundary(void **state)
{
    struct store_fixture *f = *state;
    struct inspect_requeue_all s;
    struct store_cmd c;
    char id[48];
    int calls = 0;

    for (int i = 0; i < 250; i++)
        redisAppendCommand(f->rc,
                           "XADD " DEAD " * request_id b-%d activity_id a audience x "
                           "test_email '' conv c created_ms 1 reason boom",
                           i);
    for (int i = 0; i < 250; i++) {
        redisReply *x;
        assert_int_equal(redisGetReply(f->rc, (void **)&x), REDIS_OK);
        freeReplyObject(x);
    }
    inspect_requeue_all_init(&s, 250);
    do {
        redisReply *x;

        inspect_requeue_all_cmd(&c, "digest", &s);
        x = redisCommandArgv(f->rc, c.argc, c.argv, c.argvlen);
        store_cmd_free(&c);
        assert_int_equal(inspect_requeue_all_decode(x, &s), 0);
        freeReplyObject(x);
        if (++calls == 1)
            dead_add(f, "late", "boom", id, sizeof(id));
    } while (!s.done);
    assert_int_equal(calls, (250 + INSPECT_REQUEUE_STEP - 1) / INSPECT_REQUEUE_STEP);
    assert_int_equal(s.requeued, 250);
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", STREAM), 250);
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", DEAD), 1);
}

/* ---- one implementation, sync or async ---------------------------------- */

static void async_answers_are_the_blocking_ones(void **state)
{
    struct store_fixture *f = *state;
    char text[TEXT_MAX];
    struct store_cmd c;
    struct res r = {0};

    cmd(f, "XADD " STREAM " 9-1 request_id r9");
    cmd(f, "XGROUP CREATE " STREAM " workers 0");
    cmd(f, "XREADGROUP GROUP workers w:1 COUNT 1 STREAMS " STREAM " >");
    cmd(f, "HSET " REC "r-9 status queued mode async stream_id 9-1 created_ms 9");
    beat(f, "w:1", "worker");

    /* The answers age by Redis's clock: ask both within one millisecond's tolerance. */
    assert_int_equal(inspect_procs(f->conn, f->cfg.prefix, on_json, &r), 0);
    store_fixture_wait_one(f, &r.calls);
    inspect_procs_cmd(&c, "digest");
    assert_int_equal(store_fixture_sync_json(f, &c, inspect_procs_decode, text, sizeof(text)), 0);
    assert_non_null(strstr(r.text, "\"name\":\"w:1\""));
    assert_int_equal(strncmp(text, r.text, 8), 0); /* {"now_ms" … */
    {
        struct json_object *a = parse(text), *b = parse(r.text);
        json_object_object_del(a, "now_ms");
        json_object_object_del(b, "now_ms");
        json_object_object_del(idx(at(a, "procs"), 0), "beat_age_ms");
        json_object_object_del(idx(at(b, "procs"), 0), "beat_age_ms");
        json_object_object_del(idx(at(a, "procs"), 0), "uptime_ms");
        json_object_object_del(idx(at(b, "procs"), 0), "uptime_ms");
        assert_string_equal(json_object_to_json_string(a), json_object_to_json_string(b));
        json_object_put(a);
        json_object_put(b);
    }
    memset(&r, 0, sizeof(r));
    assert_int_equal(inspect_dead(f->conn, f->cfg.prefix, 5, on_json, &r), 0);
    store_fixture_wait_one(f, &r.calls);
    assert_int_equal(inspect_dead_cmd(&c, "digest", 5), 0);
    assert_int_equal(store_fixture_sync_json(f, &c, inspect_dead_decode, text, sizeof(text)), 0);
    assert_string_equal(strchr(text, ','), strchr(r.text, ',')); /* all but now_ms */
    memset(&r, 0, sizeof(r));
    assert_int_equal(inspect_request(f->conn, f->cfg.prefix, "r-9", on_json, &r), 0);
    store_fixture_wait_one(f, &r.calls);
    assert_non_null(strstr(r.text, "\"pending\":{\"consumer\":\"w:1\""));
    memset(&r, 0, sizeof(r));
    assert_int_equal(inspect_pending(f->conn, f->cfg.prefix, 10, on_json, &r), 0);
    store_fixture_wait_one(f, &r.calls);
    assert_non_null(strstr(r.text, "\"request_id\":\"r9\""));
    memset(&r, 0, sizeof(r));
    assert_int_equal(inspect_history(f->conn, f->cfg.prefix, 5, on_json, &r), 0);
    store_fixture_wait_one(f, &r.calls);
    assert_int_equal(r.err, 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(inspect_queue(f->conn, f->cfg.prefix, 60000, on_json, &r), 0);
    store_fixture_wait_one(f, &r.calls);
    assert_non_null(strstr(r.text, "\"verdict\":\"healthy\""));
}

/* Decoders are pure: shapes they cannot read are DG_ERR_PROTOCOL, no reply is UNAVAILABLE. */
static void decoders_refuse_unexpected_replies(void **state)
{
    redisReply integer = {.type = REDIS_REPLY_INTEGER, .integer = 1};
    redisReply error = {.type = REDIS_REPLY_ERROR, .str = (char[]){"ERR x"}, .len = 5};
    int (*const decoders[])(const redisReply *, struct json_object **) = {
        inspect_queue_decode,     inspect_procs_decode,       inspect_pending_decode,
        inspect_dead_decode,      inspect_history_decode,     inspect_request_decode,
        inspect_consumers_decode, inspect_check_facts_decode,
    };
    struct inspect_requeue_all s;
    const char *id = "x";

    for (size_t i = 0; i < ARRAY_SIZE(decoders); i++) {
        struct json_object *o = (struct json_object *)&integer; /* must be reset to NULL */

        assert_int_equal(decoders[i](&integer, &o), DG_ERR_PROTOCOL);
        assert_null(o);
        assert_int_equal(decoders[i](&error, &o), DG_ERR_PROTOCOL);
        assert_int_equal(decoders[i](NULL, &o), DG_ERR_UNAVAILABLE);
    }
    assert_int_equal(inspect_requeue_decode(&integer, &id), DG_ERR_PROTOCOL);
    assert_null(id);
    assert_int_equal(inspect_requeue_decode(&error, &id), DG_ERR_PROTOCOL);
    assert_int_equal(inspect_requeue_decode(NULL, &id), DG_ERR_UNAVAILABLE);
    inspect_requeue_all_init(&s, 1);
    assert_int_equal(inspect_requeue_all_decode(&integer, &s), DG_ERR_PROTOCOL);
    assert_int_equal(inspect_requeue_all_decode(NULL, &s), DG_ERR_UNAVAILABLE);
}

#define T(name) cmocka_unit_test_setup_teardown(name, store_fixture_setup, store_fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(snapshot_of_a_fresh_redis),
        T(snapshot_reads_stream_group_consumers_and_dead),
        T(an_entry_idle_past_twice_the_claim_time_is_stuck),
        T(no_live_consumer_comes_before_stuck),
        T(lag_rising_between_minutes_is_a_growing_backlog),
        T(rates_sum_the_minutes),
        T(snapshot_reports_a_key_of_the_wrong_type),
        T(procs_lists_the_live_and_the_consumers_without_a_heartbeat),
        T(pending_lists_the_oldest_with_their_requests),
        T(pending_without_a_group_is_empty_not_an_error),
        T(dead_lists_the_newest_first_as_stored),
        T(history_gives_every_minute_oldest_first),
        T(request_shows_record_timeline_entry_pending_and_reference),
        T(request_of_a_dead_job_shows_its_dead_entry),
        T(request_without_record_is_none),
        T(bad_ids_are_refused_at_submission),
        T(prune_removes_only_idle_consumers_holding_nothing_without_a_heartbeat),
        T(check_facts_read_version_newest_record_and_recent_dead),
        T(requeue_puts_the_job_back_once),
        T(requeue_finds_a_dead_job_whose_record_expired),
        T(requeue_leaves_what_is_not_dead),
        cmocka_unit_test(requeued_answer_names_both_ids),
        T(requeue_all_needs_the_count_it_was_given),
        T(requeue_all_is_stepped_and_stops_at_its_boundary),
        T(async_answers_are_the_blocking_ones),
        cmocka_unit_test(decoders_refuse_unexpected_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
