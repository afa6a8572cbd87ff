/*
 * test_queue.c: the resilient Redis connection and the job queue against
 * real redis-server processes. Each test starts its own server on a free
 * loopback port in a temp dir and kills it by pid. Redis contents are checked
 * with hiredis's blocking API (tests may block; the code under test may not).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <hiredis/hiredis.h>

#include "core/buf.h"
#include "core/clock.h"
#include "config.h"
#include "metrics.h"
#include "store/queue.h"
#include "redis_server.h"

struct fixture {
    uv_loop_t loop;
    uv_timer_t tick;
    struct config cfg;
    struct metrics *metrics;
    struct redis_server srv;
    struct queue *q;
    int stopped_calls;
};

struct result {
    int calls;
    int err;
    bool duplicate;
    char id[64];
    uint64_t done_ms;
};

/* ---- loop helpers ----------------------------------------------------- */

/* Runs the loop until pred holds or timeout_ms passes; returns pred. */
static bool run_until(struct fixture *f, bool (*pred)(void *), void *arg, uint64_t timeout_ms)
{
    return loop_run_until(&f->loop, &f->tick, pred, arg, timeout_ms);
}

static void run_for(struct fixture *f, uint64_t ms)
{
    loop_run_for(&f->loop, &f->tick, ms);
}

static bool is_ready(void *arg)
{
    return queue_ready(arg);
}

static bool is_down(void *arg)
{
    return !queue_ready(arg);
}

static bool has_calls(void *arg)
{
    return ((struct result *)arg)->calls > 0;
}

static bool is_stopped(void *arg)
{
    return ((struct fixture *)arg)->stopped_calls > 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void on_enqueued(int err, const char *id, bool duplicate, void *data)
{
    struct result *r = data;

    r->calls++;
    r->err = err;
    r->duplicate = duplicate;
    r->done_ms = now_ms();
    snprintf(r->id, sizeof(r->id), "%s", id != NULL ? id : "");
}

static void on_done(int err, void *data)
{
    on_enqueued(err, NULL, false, data);
}

static void on_stopped(struct queue *q, void *data)
{
    ((struct fixture *)data)->stopped_calls++;
}

/* ---- fixture ---------------------------------------------------------- */

static void set_str(char **field, const char *v)
{
    xfree(*field);
    *field = v != NULL ? xstrdup(v) : NULL;
}

/* Points cfg at the fixture's server, creates the queue, waits until ready. */
static void fixture_connect(struct fixture *f, int db, bool wait_ready)
{
    if (f->srv.port != 0) {
        f->cfg.redis_kind = REDIS_TCP;
        set_str(&f->cfg.redis_host, "127.0.0.1");
        set_str(&f->cfg.redis_path, NULL);
        f->cfg.redis_port = f->srv.port;
    } else {
        f->cfg.redis_kind = REDIS_UNIX;
        set_str(&f->cfg.redis_host, NULL);
        set_str(&f->cfg.redis_path, f->srv.sock);
        f->cfg.redis_port = 0;
    }
    set_str(&f->cfg.redis_password, f->srv.password);
    f->cfg.redis_db = db;
    f->q = queue_create(&f->loop, &f->cfg, f->metrics);
    queue_start(f->q);
    if (wait_ready)
        assert_true(run_until(f, is_ready, f->q, 5000));
}

static struct fixture *fixture_new(bool unix_only, const char *password)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->tick), 0);
    config_defaults(&f->cfg);
    log_setup(LOG_LEVEL_WARN, false);
    f->metrics = metrics_create();
    redis_server_start(&f->srv, unix_only, password);
    return f;
}

static int setup_tcp(void **state)
{
    struct fixture *f = fixture_new(false, NULL);
    fixture_connect(f, 0, true);
    *state = f;
    return 0;
}

/* Stops the queue (if the test did not), and requires a clean loop close. */
static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f->q != NULL) {
        queue_stop(f->q, on_stopped, f);
        assert_true(run_until(f, is_stopped, f, 5000));
        assert_int_equal(f->stopped_calls, 1);
        queue_free(f->q);
    }
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    redis_server_cleanup(&f->srv);
    metrics_free(f->metrics);
    config_free(&f->cfg);
    xfree(f);
    return 0;
}

/* ---- jobs ------------------------------------------------------------- */

static const char *const ref_fields[] = {"service_url", "channel_id", "stale"};
static const char *const ref_values[] = {"https://smba.example/emea/", "msteams", "0"};

static struct queue_job make_job(const char *request_id, const char *activity_id)
{
    struct queue_job job = {
        .request_id = request_id,
        .conv_key = "msteams:19:abc@thread.v2",
        .activity_id = activity_id,
        .audience = "sales",
        .test_email = "",
        .created_ms = 1700000000123u,
        .mode = "async",
        .ref_fields = ref_fields,
        .ref_values = ref_values,
        .n_ref = ARRAY_SIZE(ref_fields),
    };
    return job;
}

/* Enqueues and runs the loop until the callback ran; returns the result. */
static struct result enqueue_wait(struct fixture *f, const struct queue_job *job)
{
    struct result r = {0};

    assert_int_equal(queue_enqueue(f->q, job, on_enqueued, &r), 0);
    assert_true(run_until(f, has_calls, &r, 5000));
    assert_int_equal(r.calls, 1);
    return r;
}

static bool metrics_has(struct fixture *f, const char *line)
{
    struct buf b;
    bool found;

    buf_init(&b, 1 << 20);
    assert_int_equal(metrics_render(f->metrics, &b), 0);
    found = strstr(buf_cstr(&b), line) != NULL;
    buf_free(&b);
    return found;
}

/* The value of one counter or gauge line of the Prometheus text. */
static long long metrics_value(struct fixture *f, const char *name)
{
    struct buf b;
    const char *p;
    char line[128];
    long long v = -1;

    buf_init(&b, 1 << 20);
    assert_int_equal(metrics_render(f->metrics, &b), 0);
    snprintf(line, sizeof(line), "\n%s ", name);
    p = strstr(buf_cstr(&b), line);
    if (p != NULL)
        v = strtoll(p + strlen(line), NULL, 10);
    buf_free(&b);
    return v;
}

static void enqueue_writes_spec_keys(void **state)
{
    struct fixture *f = *state;
    struct queue_job job = make_job("req-1", "act-1");
    struct result r = enqueue_wait(f, &job);
    redisContext *rc = sync_connect(&f->srv, 0);
    redisReply *x;
    char sid[48];
    long long ttl;

    assert_int_equal(r.err, 0);
    assert_false(r.duplicate);
    assert_string_equal(r.id, "req-1");
    assert_non_null(rc);

    /* Stream: exactly the SPEC §5 fields, in order. */
    x = sync_cmd(rc, "XRANGE {digest}:requests - +");
    assert_int_equal(x->elements, 1);
    {
        const char *const want[] = {"request_id",  "req-1",
                                    "activity_id", "act-1",
                                    "audience",    "sales",
                                    "test_email",  "",
                                    "conv",        "msteams:19:abc@thread.v2",
                                    "created_ms",  "1700000000123"};
        sync_assert_pairs(x->element[0]->element[1], want, ARRAY_SIZE(want));
    }
    snprintf(sid, sizeof(sid), "%s", x->element[0]->element[0]->str);
    freeReplyObject(x);

    /* Audit record with its TTL; it names its stream entry. */
    x = sync_cmd(rc, "HGETALL {digest}:req:req-1");
    {
        /* clang-format off */
        const char *const want[] = {"status",      "queued",
                                    "mode",        "async",
                                    "audience",    "sales",
                                    "test_email",  "",
                                    "conv",        "msteams:19:abc@thread.v2",
                                    "activity_id", "act-1",
                                    "created_ms",  "1700000000123",
                                    "attempts",    "0",
                                    "stream_id",   sid};
        /* clang-format on */
        sync_assert_pairs(x, want, ARRAY_SIZE(want));
    }
    freeReplyObject(x);
    ttl = sync_cmd_int(rc, "TTL %s", "{digest}:req:req-1");
    assert_true(ttl > 0 && ttl <= (long long)f->cfg.request_ttl_s);

    /* Conversation reference. */
    x = sync_cmd(rc, "HGETALL {digest}:conv:msteams:19:abc@thread.v2");
    {
        /* A new conversation's hash is made by the job's one HSET, last_request_id first. */
        const char *const want[] = {
            "last_request_id", "req-1",   "service_url", "https://smba.example/emea/",
            "channel_id",      "msteams", "stale",       "0"};
        sync_assert_pairs(x, want, ARRAY_SIZE(want));
    }
    freeReplyObject(x);

    /* Dedup key holds the request id, with its TTL. */
    x = sync_cmd(rc, "GET {digest}:dedup:msteams:19:abc@thread.v2:act-1");
    assert_int_equal(x->type, REDIS_REPLY_STRING);
    assert_string_equal(x->str, "req-1");
    freeReplyObject(x);
    ttl = sync_cmd_int(rc, "TTL %s", "{digest}:dedup:msteams:19:abc@thread.v2:act-1");
    assert_true(ttl > 0 && ttl <= (long long)f->cfg.dedup_ttl_s);

    /* The consumer group exists on the stream. */
    x = sync_cmd(rc, "XINFO GROUPS {digest}:requests");
    assert_int_equal(x->type, REDIS_REPLY_ARRAY);
    assert_int_equal(x->elements, 1);
    assert_string_equal(x->element[0]->element[0]->str, "name");
    assert_string_equal(x->element[0]->element[1]->str, "workers");
    freeReplyObject(x);
    redisFree(rc);

    assert_true(metrics_has(f, "digestd_jobs_enqueued_total 1\n"));
    assert_true(metrics_has(f, "digestd_redis_connected 1\n"));
}

/* The minute a job landed in (the batch's, by our clock) counts it: enqueued or sync. */
static long long minute_count(redisContext *rc, uint64_t minute, const char *field)
{
    redisReply *x = sync_cmd(rc, "HGET {digest}:minute:%llu %s", (unsigned long long)minute, field);
    long long n = x->type == REDIS_REPLY_STRING ? strtoll(x->str, NULL, 10) : 0;

    freeReplyObject(x);
    return n;
}

/*
 * Sync mode records the request as processing, adds nothing to the stream,
 * and counts in the minute as sync; async ones count as enqueued, and the
 * minute keeps for 48 h (SPEC §5). A duplicate counts nothing.
 */
static void sync_and_async_count_in_their_minute(void **state)
{
    struct fixture *f = *state;
    struct queue_job job = make_job("req-s", "act-s");
    struct queue_job job2 = make_job("req-a", "act-a");
    struct queue_job dup = make_job("req-d", "act-a");
    uint64_t m0 = clock_wall_ms() / 60000, m1;
    redisContext *rc = sync_connect(&f->srv, 0);
    struct result r;
    long long sync_n, enq_n, ttl;
    redisReply *x;

    job.mode = "sync";
    r = enqueue_wait(f, &job);
    assert_int_equal(r.err, 0);
    r = enqueue_wait(f, &job2);
    assert_int_equal(r.err, 0);
    r = enqueue_wait(f, &dup);
    assert_true(r.duplicate);
    m1 = clock_wall_ms() / 60000;
    x = sync_cmd(rc, "HGETALL {digest}:req:req-s");
    {
        const char *const want[] = {"status",      "processing",
                                    "mode",        "sync",
                                    "audience",    "sales",
                                    "test_email",  "",
                                    "conv",        "msteams:19:abc@thread.v2",
                                    "activity_id", "act-s",
                                    "created_ms",  "1700000000123",
                                    "attempts",    "0",
                                    "started_ms",  "1700000000123"};
        sync_assert_pairs(x, want, ARRAY_SIZE(want));
    }
    freeReplyObject(x);
    assert_int_equal(sync_cmd_int(rc, "XLEN %s", "{digest}:requests"), 1);
    /* The test may straddle a minute: count across the two it could have used. */
    sync_n = minute_count(rc, m0, "sync") + (m1 != m0 ? minute_count(rc, m1, "sync") : 0);
    enq_n = minute_count(rc, m0, "enqueued") + (m1 != m0 ? minute_count(rc, m1, "enqueued") : 0);
    assert_int_equal(sync_n, 1);
    assert_int_equal(enq_n, 1);
    x = sync_cmd(rc, "TTL {digest}:minute:%llu", (unsigned long long)m1);
    ttl = x->integer;
    freeReplyObject(x);
    assert_true(ttl > 172000 && ttl <= 172800);
    redisFree(rc);
}

static void duplicate_returns_first_id(void **state)
{
    struct fixture *f = *state;
    struct queue_job job = make_job("req-1", "act-1");
    const char *const newer[] = {"https://smba.example/amer/", "msteams", "0"};
    struct result r;
    redisContext *rc;
    redisReply *x;

    r = enqueue_wait(f, &job);
    assert_int_equal(r.err, 0);
    /* The same activity again, under a new request id and a moved service URL. */
    job.request_id = "req-2";
    job.ref_values = newer;
    r = enqueue_wait(f, &job);
    assert_int_equal(r.err, 0);
    assert_true(r.duplicate);
    assert_string_equal(r.id, "req-1");

    rc = sync_connect(&f->srv, 0);
    assert_non_null(rc);
    assert_int_equal(sync_cmd_int(rc, "XLEN %s", "{digest}:requests"), 1);
    assert_int_equal(sync_cmd_int(rc, "EXISTS %s", "{digest}:req:req-2"), 0);
    /* Duplicates still refresh the conversation reference. */
    x = sync_cmd(rc, "HGET {digest}:conv:msteams:19:abc@thread.v2 service_url");
    assert_string_equal(x->str, "https://smba.example/amer/");
    freeReplyObject(x);
    redisFree(rc);
    assert_true(metrics_has(f, "digestd_jobs_duplicate_total 1\n"));
}

static void store_reference_writes_pairs(void **state)
{
    struct fixture *f = *state;
    const char *const fields[] = {"service_url", "updated_ms", "stale", "locale"};
    const char *const values[] = {"https://smba.example/x/", "42", "1", NULL};
    struct result r = {0};
    redisContext *rc;
    redisReply *x;

    assert_int_equal(queue_store_reference(f->q, "msteams:conv-9", fields, values, 4, on_done, &r),
                     0);
    assert_true(run_until(f, has_calls, &r, 5000));
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, 0);
    rc = sync_connect(&f->srv, 0);
    assert_non_null(rc);
    x = sync_cmd(rc, "HGETALL {digest}:conv:msteams:conv-9");
    {
        const char *const want[] = {"service_url", "https://smba.example/x/",
                                    "updated_ms",  "42",
                                    "stale",       "1",
                                    "locale",      ""};
        sync_assert_pairs(x, want, ARRAY_SIZE(want));
    }
    freeReplyObject(x);
    redisFree(rc);
}

/* After SCRIPT FLUSH the EVALSHA gets NOSCRIPT: the caller must not notice. */
static void noscript_falls_back_to_eval(void **state)
{
    struct fixture *f = *state;
    struct queue_job job = make_job("req-7", "act-7");
    redisContext *rc = sync_connect(&f->srv, 0);
    redisReply *x;
    struct result r;

    assert_non_null(rc);
    freeReplyObject(sync_cmd(rc, "SCRIPT FLUSH"));
    freeReplyObject(sync_cmd(rc, "CONFIG RESETSTAT"));
    r = enqueue_wait(f, &job);
    assert_int_equal(r.err, 0);
    assert_false(r.duplicate);
    assert_int_equal(sync_cmd_int(rc, "XLEN %s", "{digest}:requests"), 1);
    x = sync_cmd(rc, "INFO commandstats");
    assert_non_null(strstr(x->str, "cmdstat_evalsha:calls=1,"));
    assert_non_null(strstr(x->str, "cmdstat_eval:calls=1,"));
    freeReplyObject(x);
    redisFree(rc);
}

static void calls_fail_fast_while_down_then_recover(void **state)
{
    struct fixture *f = *state;
    struct queue_job job = make_job("req-1", "act-1");
    const char *const fields[] = {"stale"};
    const char *const values[] = {"0"};
    struct result r = {0};
    uint64_t t0;

    redis_server_kill(&f->srv);
    assert_true(run_until(f, is_down, f->q, 5000));
    t0 = now_ms();
    assert_int_equal(queue_enqueue(f->q, &job, on_enqueued, &r), DG_ERR_UNAVAILABLE);
    assert_int_equal(queue_store_reference(f->q, "c", fields, values, 1, on_done, &r),
                     DG_ERR_UNAVAILABLE);
    assert_true(now_ms() - t0 < 100);
    run_for(f, 300); /* a few refused attempts; still no callback */
    assert_int_equal(r.calls, 0);
    assert_false(queue_ready(f->q));

    /* Same port, empty Redis: reconnects by itself, group and script recreated. */
    redis_server_spawn(&f->srv);
    assert_true(run_until(f, is_ready, f->q, 8000));
    r = enqueue_wait(f, &job);
    assert_int_equal(r.err, 0);
    assert_false(r.duplicate);
    assert_true(metrics_has(f, "digestd_redis_reconnects_total 1\n"));
}

/*
 * A frozen Redis accepts bytes but never answers: the first command times out,
 * a later one finishes with UNAVAILABLE when the connection is torn down.
 */
/* Served while Redis was away: counted in the process, added to the minute once it is back. */
static void offline_counts_reach_their_minute_after_reconnect(void **state)
{
    struct fixture *f = *state;
    uint64_t m0 = clock_wall_ms() / 60000, m1;
    redisContext *rc;
    long long fallback, sync_n;

    redis_server_kill(&f->srv);
    assert_true(run_until(f, is_down, f->q, 5000));
    queue_count_offline(f->q, HISTORY_OFFLINE_FALLBACK);
    queue_count_offline(f->q, HISTORY_OFFLINE_FALLBACK);
    queue_count_offline(f->q, HISTORY_OFFLINE_SYNC);
    m1 = clock_wall_ms() / 60000;
    redis_server_spawn(&f->srv);
    assert_true(run_until(f, is_ready, f->q, 8000));
    run_for(f, 200); /* the flush follows the setup on the same connection */
    rc = sync_connect(&f->srv, 0);
    fallback = minute_count(rc, m0, "fallback") + (m1 != m0 ? minute_count(rc, m1, "fallback") : 0);
    sync_n = minute_count(rc, m0, "sync") + (m1 != m0 ? minute_count(rc, m1, "sync") : 0);
    assert_int_equal(fallback, 2);
    assert_int_equal(sync_n, 1);
    redisFree(rc);
}

static void frozen_redis_times_out_then_recovers(void **state)
{
    struct fixture *f = *state;
    struct queue_job a = make_job("req-a", "act-a");
    struct queue_job b = make_job("req-b", "act-b");
    struct result ra = {0}, rb = {0};
    uint64_t t0;

    kill(f->srv.pid, SIGSTOP);
    t0 = now_ms();
    assert_int_equal(queue_enqueue(f->q, &a, on_enqueued, &ra), 0);
    run_for(f, 500);
    assert_int_equal(queue_enqueue(f->q, &b, on_enqueued, &rb), 0);
    assert_true(run_until(f, has_calls, &ra, 6000));
    assert_int_equal(ra.err, DG_ERR_TIMEOUT);
    assert_true(ra.done_ms - t0 >= REDIS_COMMAND_TIMEOUT_MS - 100);
    assert_true(ra.done_ms - t0 <= REDIS_COMMAND_TIMEOUT_MS + 1500);
    assert_int_equal(rb.calls, 1);
    assert_int_equal(rb.err, DG_ERR_UNAVAILABLE);
    assert_false(queue_ready(f->q));

    kill(f->srv.pid, SIGCONT);
    assert_true(run_until(f, is_ready, f->q, 10000));
    b.activity_id = "act-c";
    rb = enqueue_wait(f, &b);
    assert_int_equal(rb.err, 0);
    /* Exactly once: nothing more arrived for the first two. */
    assert_int_equal(ra.calls, 1);
}

static void stop_finishes_pending_with_closed(void **state)
{
    struct fixture *f = *state;
    struct queue_job job = make_job("req-s", "act-s");
    const char *const fields[] = {"stale"};
    const char *const values[] = {"1"};
    struct result r[4] = {{0}};

    /* Frozen, so the commands are written but stay unanswered. */
    kill(f->srv.pid, SIGSTOP);
    for (int i = 0; i < 3; i++)
        assert_int_equal(queue_enqueue(f->q, &job, on_enqueued, &r[i]), 0);
    assert_int_equal(queue_store_reference(f->q, "c", fields, values, 1, on_done, &r[3]), 0);
    run_for(f, 100);
    queue_stop(f->q, on_stopped, f);
    assert_int_equal(queue_enqueue(f->q, &job, on_enqueued, &r[0]), DG_ERR_CLOSED);
    assert_true(run_until(f, is_stopped, f, 5000));
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].err, DG_ERR_CLOSED);
    }
    run_for(f, 50);
    assert_int_equal(f->stopped_calls, 1);
    queue_free(f->q);
    f->q = NULL;
    kill(f->srv.pid, SIGCONT);
    /* teardown asserts uv_loop_close() == 0 */
}

/* ---- batches ---------------------------------------------------------- */

#define MANY 300 /* more than two batches of QUEUE_BATCH_MAX_ENTRIES (128) */

struct many {
    char req[MANY][32];
    char act[MANY][32];
    struct result r[MANY];
    int n;
};

static bool all_called(void *arg)
{
    struct many *m = arg;

    for (int i = 0; i < m->n; i++)
        if (m->r[i].calls == 0)
            return false;
    return true;
}

/* Submits jobs first..n-1 of m in the current iteration (no loop run). */
static void submit_many(struct fixture *f, struct many *m, int first, int n)
{
    for (int i = first; i < n; i++) {
        struct queue_job job;

        snprintf(m->req[i], sizeof(m->req[i]), "req-%d", i);
        snprintf(m->act[i], sizeof(m->act[i]), "act-%d", i);
        job = make_job(m->req[i], m->act[i]);
        assert_int_equal(queue_enqueue(f->q, &job, on_enqueued, &m->r[i]), 0);
    }
    m->n = n;
}

/* The "calls=N," of one command in INFO commandstats, or -1. */
static long long stat_calls(redisContext *rc, const char *command)
{
    redisReply *x = sync_cmd(rc, "INFO commandstats");
    char key[64];
    const char *p;
    long long v = -1;

    snprintf(key, sizeof(key), "cmdstat_%s:calls=", command);
    p = strstr(x->str, key);
    if (p != NULL)
        v = strtoll(p + strlen(key), NULL, 10);
    freeReplyObject(x);
    return v;
}

struct ack_result {
    int calls;
    int err;
    bool found;
    enum request_status status;
};

static void on_ack(int err, bool found, enum request_status status, void *data)
{
    struct ack_result *r = data;

    r->calls++;
    r->err = err;
    r->found = found;
    r->status = status;
}

static bool ack_called(void *arg)
{
    return ((struct ack_result *)arg)->calls > 0;
}

/*
 * The acknowledgment's id rides in the batch: in the same script call as a
 * job submitted before it in the same iteration (which it then sees), by
 * EVALSHA only, adding ack_activity_id and nothing else to the record; no
 * record, nothing written.
 */
static void ack_id_recorded_through_the_batch(void **state)
{
    struct fixture *f = *state;
    struct queue_job job = make_job("req-a", "act-a");
    struct result r = {0};
    struct ack_result a = {0}, none = {0}, later = {0};
    redisContext *rc = sync_connect(&f->srv, 0);
    redisReply *x;
    long long evalsha0, eval0, ttl;
    char sid[48];

    assert_non_null(rc);
    evalsha0 = stat_calls(rc, "evalsha");
    eval0 = stat_calls(rc, "eval");
    assert_int_equal(queue_enqueue(f->q, &job, on_enqueued, &r), 0);
    assert_int_equal(queue_record_ack(f->q, "req-a", "1:ack-card", on_ack, &a), 0);
    assert_int_equal(queue_record_ack(f->q, "req-none", "1:other", on_ack, &none), 0);
    assert_true(run_until(f, ack_called, &none, 5000));
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.err, 0);
    assert_true(a.found);
    assert_int_equal(a.status, REQUEST_STATUS_QUEUED);
    assert_int_equal(none.calls, 1);
    assert_int_equal(none.err, 0);
    assert_false(none.found);
    /* One script call for the three entries, by its SHA. */
    assert_int_equal(stat_calls(rc, "evalsha") - (evalsha0 < 0 ? 0 : evalsha0), 1);
    assert_int_equal(stat_calls(rc, "eval"), eval0);

    x = sync_cmd(rc, "XRANGE {digest}:requests - +");
    assert_int_equal(x->elements, 1);
    snprintf(sid, sizeof(sid), "%s", x->element[0]->element[0]->str);
    freeReplyObject(x);
    x = sync_cmd(rc, "HGETALL {digest}:req:req-a");
    {
        /* clang-format off */
        const char *const want[] = {"status",          "queued",
                                    "mode",            "async",
                                    "audience",        "sales",
                                    "test_email",      "",
                                    "conv",            "msteams:19:abc@thread.v2",
                                    "activity_id",     "act-a",
                                    "created_ms",      "1700000000123",
                                    "attempts",        "0",
                                    "stream_id",       sid,
                                    "ack_activity_id", "1:ack-card"};
        /* clang-format on */
        sync_assert_pairs(x, want, ARRAY_SIZE(want));
    }
    freeReplyObject(x);
    ttl = sync_cmd_int(rc, "TTL %s", "{digest}:req:req-a");
    assert_true(ttl > 0 && ttl <= (long long)f->cfg.request_ttl_s);
    assert_int_equal(sync_cmd_int(rc, "EXISTS %s", "{digest}:req:req-none"), 0);

    /* A record that ended meanwhile answers its status (the webhook updates the card). */
    x = sync_cmd(rc, "HSET {digest}:req:req-a status delivered");
    freeReplyObject(x);
    assert_int_equal(queue_record_ack(f->q, "req-a", "1:ack-card", on_ack, &later), 0);
    assert_true(run_until(f, ack_called, &later, 5000));
    assert_true(later.found);
    assert_int_equal(later.status, REQUEST_STATUS_DELIVERED);
    assert_int_equal(queue_record_ack(f->q, "", "x", on_ack, &later), DG_ERR_INVALID);
    assert_int_equal(queue_record_ack(f->q, "req-a", NULL, on_ack, &later), DG_ERR_INVALID);
    redisFree(rc);
}

/* Stream entry i holds exactly job i's SPEC §5 fields. */
static void assert_stream_entry(const redisReply *e, const struct many *m, int i)
{
    const char *const want[] = {"request_id",  m->req[i],
                                "activity_id", m->act[i],
                                "audience",    "sales",
                                "test_email",  "",
                                "conv",        "msteams:19:abc@thread.v2",
                                "created_ms",  "1700000000123"};

    sync_assert_pairs(e->element[1], want, ARRAY_SIZE(want));
}

/* The stream holds exactly m's jobs, in submission order. */
static void assert_stream_is(redisContext *rc, const struct many *m)
{
    redisReply *x = sync_cmd(rc, "XRANGE {digest}:requests - +");

    assert_int_equal(x->type, REDIS_REPLY_ARRAY);
    assert_int_equal(x->elements, m->n);
    for (int i = 0; i < m->n; i++)
        assert_stream_entry(x->element[i], m, i);
    freeReplyObject(x);
}

/*
 * 300 jobs in one iteration: three script calls (128 + 128 + 44), every
 * callback once with its own id, the stream in submission order, and each
 * audit record exact.
 */
static void batch_of_many_in_one_iteration(void **state)
{
    struct fixture *f = *state;
    struct many *m = xcalloc(1, sizeof(*m));
    redisContext *rc = sync_connect(&f->srv, 0);

    assert_non_null(rc);
    freeReplyObject(sync_cmd(rc, "CONFIG RESETSTAT"));
    submit_many(f, m, 0, MANY);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(m->r[i].calls, 0); /* never inside queue_enqueue */
    assert_true(run_until(f, all_called, m, 5000));
    run_for(f, 50);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(m->r[i].calls, 1);
        assert_int_equal(m->r[i].err, 0);
        assert_false(m->r[i].duplicate);
        assert_string_equal(m->r[i].id, m->req[i]);
    }
    assert_int_equal(stat_calls(rc, "evalsha"), 3);
    assert_stream_is(rc, m);
    for (int i = 0; i < MANY; i++) {
        redisReply *x = sync_cmd(rc, "HGETALL {digest}:req:%s", m->req[i]);
        redisReply *sid = sync_cmd(rc, "HGET {digest}:req:%s stream_id", m->req[i]);
        /* clang-format off */
        const char *const want[] = {"status",      "queued",
                                    "mode",        "async",
                                    "audience",    "sales",
                                    "test_email",  "",
                                    "conv",        "msteams:19:abc@thread.v2",
                                    "activity_id", m->act[i],
                                    "created_ms",  "1700000000123",
                                    "attempts",    "0",
                                    "stream_id",   sid->str};
        /* clang-format on */
        redisReply *e = sync_cmd(rc, "XRANGE {digest}:requests %s %s", sid->str, sid->str);
        char key[64];

        sync_assert_pairs(x, want, ARRAY_SIZE(want));
        /* The entry it names is its own. */
        assert_int_equal(e->elements, 1);
        assert_string_equal(e->element[0]->element[1]->element[1]->str, m->req[i]);
        freeReplyObject(e);
        freeReplyObject(sid);
        freeReplyObject(x);
        snprintf(key, sizeof(key), "{digest}:req:%s", m->req[i]);
        assert_true(sync_cmd_int(rc, "TTL %s", key) > 0);
    }
    redisFree(rc);
    assert_true(metrics_has(f, "digestd_jobs_enqueued_total 300\n"));
    xfree(m);
}

/* The same activity twice in one batch: one job, one duplicate with the first id. */
static void duplicates_within_one_batch(void **state)
{
    struct fixture *f = *state;
    struct queue_job a = make_job("req-a", "act-same");
    struct queue_job b = make_job("req-b", "act-same");
    struct queue_job c = make_job("req-c", "act-other");
    struct result r[3] = {{0}};
    redisContext *rc = sync_connect(&f->srv, 0);

    assert_non_null(rc);
    freeReplyObject(sync_cmd(rc, "CONFIG RESETSTAT"));
    assert_int_equal(queue_enqueue(f->q, &a, on_enqueued, &r[0]), 0);
    assert_int_equal(queue_enqueue(f->q, &b, on_enqueued, &r[1]), 0);
    assert_int_equal(queue_enqueue(f->q, &c, on_enqueued, &r[2]), 0);
    assert_true(run_until(f, has_calls, &r[2], 5000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].err, 0);
    }
    assert_false(r[0].duplicate);
    assert_string_equal(r[0].id, "req-a");
    assert_true(r[1].duplicate);
    assert_string_equal(r[1].id, "req-a");
    assert_false(r[2].duplicate);
    assert_string_equal(r[2].id, "req-c");
    assert_int_equal(stat_calls(rc, "evalsha"), 1);
    assert_int_equal(sync_cmd_int(rc, "XLEN %s", "{digest}:requests"), 2);
    assert_int_equal(sync_cmd_int(rc, "EXISTS %s", "{digest}:req:req-b"), 0);
    redisFree(rc);
    assert_true(metrics_has(f, "digestd_jobs_duplicate_total 1\n"));
    assert_true(metrics_has(f, "digestd_jobs_enqueued_total 2\n"));
}

/* A reference and a job of one iteration land in submission order. */
static void reference_keeps_submission_order(void **state)
{
    struct fixture *f = *state;
    const char *conv = "msteams:19:abc@thread.v2";
    const char *const stale_f[] = {"stale"};
    const char *const stale_v[] = {"1"};
    struct queue_job j1 = make_job("req-1", "act-1"); /* its reference says stale=0 */
    struct queue_job j2 = make_job("req-2", "act-2");
    struct result r[4] = {{0}};
    redisContext *rc = sync_connect(&f->srv, 0);
    redisReply *x;

    assert_non_null(rc);
    freeReplyObject(sync_cmd(rc, "CONFIG RESETSTAT"));
    /* job then reference: the reference's stale=1 is the last word */
    assert_int_equal(queue_enqueue(f->q, &j1, on_enqueued, &r[0]), 0);
    assert_int_equal(queue_store_reference(f->q, conv, stale_f, stale_v, 1, on_done, &r[1]), 0);
    assert_true(run_until(f, has_calls, &r[1], 5000));
    x = sync_cmd(rc, "HGET {digest}:conv:%s stale", conv);
    assert_string_equal(x->str, "1");
    freeReplyObject(x);
    /* reference then job: now the job's stale=0 is */
    assert_int_equal(queue_store_reference(f->q, conv, stale_f, stale_v, 1, on_done, &r[2]), 0);
    assert_int_equal(queue_enqueue(f->q, &j2, on_enqueued, &r[3]), 0);
    assert_true(run_until(f, has_calls, &r[3], 5000));
    x = sync_cmd(rc, "HGET {digest}:conv:%s stale", conv);
    assert_string_equal(x->str, "0");
    freeReplyObject(x);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].err, 0);
    }
    assert_false(r[3].duplicate);
    assert_string_equal(r[3].id, "req-2");
    assert_int_equal(stat_calls(rc, "evalsha"), 2); /* one per iteration */
    redisFree(rc);
}

/*
 * A frozen Redis: the batch in flight times out as a whole, a batch sent
 * behind it ends UNAVAILABLE with the teardown; every callback runs once.
 */
static void frozen_redis_fails_whole_batches(void **state)
{
    struct fixture *f = *state;
    struct many *m = xcalloc(1, sizeof(*m));
    const char *const fields[] = {"stale"};
    const char *const values[] = {"1"};
    struct result ref = {0};

    kill(f->srv.pid, SIGSTOP);
    submit_many(f, m, 0, 50);
    assert_int_equal(queue_store_reference(f->q, "c", fields, values, 1, on_done, &ref), 0);
    run_for(f, 500);
    submit_many(f, m, 50, 100);
    assert_true(run_until(f, all_called, m, 6000));
    run_for(f, 100);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(m->r[i].calls, 1);
        assert_int_equal(m->r[i].err, i < 50 ? DG_ERR_TIMEOUT : DG_ERR_UNAVAILABLE);
        assert_string_equal(m->r[i].id, "");
    }
    assert_int_equal(ref.calls, 1);
    assert_int_equal(ref.err, DG_ERR_TIMEOUT);
    assert_false(queue_ready(f->q));
    kill(f->srv.pid, SIGCONT);
    assert_true(run_until(f, is_ready, f->q, 10000));
    xfree(m);
}

/* Stop while a batch is still pending (not sent): CLOSED for each, once. */
static void stop_fails_unsent_batch(void **state)
{
    struct fixture *f = *state;
    struct many *m = xcalloc(1, sizeof(*m));

    submit_many(f, m, 0, 10);
    queue_stop(f->q, on_stopped, f);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(m->r[i].calls, 1);
        assert_int_equal(m->r[i].err, DG_ERR_CLOSED);
    }
    assert_true(run_until(f, is_stopped, f, 5000));
    for (int i = 0; i < 10; i++)
        assert_int_equal(m->r[i].calls, 1);
    queue_free(f->q);
    f->q = NULL;
    xfree(m);
}

/* NOSCRIPT for a whole batch: one EVALSHA, one EVAL, every job stored in order. */
static void noscript_fallback_with_batch(void **state)
{
    struct fixture *f = *state;
    struct many *m = xcalloc(1, sizeof(*m));
    redisContext *rc = sync_connect(&f->srv, 0);

    assert_non_null(rc);
    freeReplyObject(sync_cmd(rc, "SCRIPT FLUSH"));
    freeReplyObject(sync_cmd(rc, "CONFIG RESETSTAT"));
    submit_many(f, m, 0, 20);
    assert_true(run_until(f, all_called, m, 5000));
    for (int i = 0; i < 20; i++) {
        assert_int_equal(m->r[i].calls, 1);
        assert_int_equal(m->r[i].err, 0);
        assert_string_equal(m->r[i].id, m->req[i]);
    }
    assert_int_equal(stat_calls(rc, "evalsha"), 1);
    assert_int_equal(stat_calls(rc, "eval"), 1);
    assert_stream_is(rc, m);
    redisFree(rc);
    xfree(m);
}

/*
 * After SCRIPT FLUSH, one job per loop iteration keeps many EVALSHA batches
 * in flight when the first NOSCRIPT comes back. Those are resent with EVAL
 * one by one; a batch sent meanwhile must not overtake them in the stream.
 */
static void noscript_keeps_order_across_batches(void **state)
{
    struct fixture *f = *state;
    struct many *m = xcalloc(1, sizeof(*m));
    redisContext *rc = sync_connect(&f->srv, 0);
    uint64_t deadline = now_ms() + 5000;

    assert_non_null(rc);
    freeReplyObject(sync_cmd(rc, "SCRIPT FLUSH"));
    freeReplyObject(sync_cmd(rc, "CONFIG RESETSTAT"));
    for (int i = 0; i < 200; i++) {
        submit_many(f, m, i, i + 1);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    while (!all_called(m) && now_ms() < deadline)
        run_for(f, 10);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(m->r[i].calls, 1);
        assert_int_equal(m->r[i].err, 0);
    }
    assert_true(stat_calls(rc, "eval") >= 1); /* the fallback did happen */
    assert_stream_is(rc, m);
    redisFree(rc);
    xfree(m);
}

/*
 * References overwritten field for field later in the same batch are not
 * written (fewer HSETs), yet Redis ends up exactly as if they were: A and C
 * share a conversation and fields, B is another conversation, D has the
 * same conversation but other fields and must be written.
 */
static void superseded_references_skipped(void **state)
{
    struct fixture *f = *state;
    const char *const va[] = {"https://a.example/", "msteams", "0"};
    const char *const vc[] = {"https://c.example/", "msteams", "0"};
    const char *const d_fields[] = {"locale"};
    const char *const d_values[] = {"de-DE"};
    struct queue_job a = make_job("req-a", "act-a");
    struct queue_job b = make_job("req-b", "act-b");
    struct queue_job c = make_job("req-c", "act-c");
    struct result r[4] = {{0}};
    redisContext *rc = sync_connect(&f->srv, 0);
    redisReply *x;

    assert_non_null(rc);
    freeReplyObject(sync_cmd(rc, "CONFIG RESETSTAT"));
    a.ref_values = va;
    c.ref_values = vc;
    b.conv_key = "msteams:other";
    assert_int_equal(queue_enqueue(f->q, &a, on_enqueued, &r[0]), 0);
    assert_int_equal(queue_enqueue(f->q, &b, on_enqueued, &r[1]), 0);
    assert_int_equal(queue_enqueue(f->q, &c, on_enqueued, &r[2]), 0);
    assert_int_equal(queue_store_reference(f->q, c.conv_key, d_fields, d_values, 1, on_done, &r[3]),
                     0);
    assert_true(run_until(f, has_calls, &r[3], 5000));
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].err, 0);
    }
    assert_string_equal(r[2].id, "req-c");
    /* 3 audit records, A's last_request_id alone (its reference was skipped),
     * B's and C's references each with its last_request_id, D's reference. */
    assert_int_equal(stat_calls(rc, "hset"), 7);
    x = sync_cmd(rc, "HGETALL {digest}:conv:msteams:19:abc@thread.v2");
    {
        const char *const want[] = {
            "last_request_id", "req-c",   "service_url", "https://c.example/",
            "channel_id",      "msteams", "stale",       "0",
            "locale",          "de-DE"};
        sync_assert_pairs(x, want, ARRAY_SIZE(want));
    }
    freeReplyObject(x);
    x = sync_cmd(rc, "HGET {digest}:conv:msteams:other service_url");
    assert_string_equal(x->str, "https://smba.example/emea/");
    freeReplyObject(x);
    assert_int_equal(sync_cmd_int(rc, "XLEN %s", "{digest}:requests"), 3);
    redisFree(rc);
}

/* Submission checks stay synchronous: nothing is queued, no callback. */
static void bad_entries_refused_at_submission(void **state)
{
    struct fixture *f = *state;
    struct queue_job job = make_job("req-1", "act-1");
    const char *const fields[] = {"stale"};
    const char *const values[] = {"1"};
    struct buf big;
    struct result r = {0};

    job.activity_id = NULL;
    assert_int_equal(queue_enqueue(f->q, &job, on_enqueued, &r), DG_ERR_INVALID);
    assert_int_equal(queue_store_reference(f->q, "c", fields, values, 0, on_done, &r),
                     DG_ERR_INVALID);
    buf_init(&big, 70 * 1024);
    for (int i = 0; i < 70 * 1024 - 1; i++)
        assert_int_equal(buf_append(&big, "x", 1), 0);
    job = make_job(buf_cstr(&big), "act-big");
    assert_int_equal(queue_enqueue(f->q, &job, on_enqueued, &r), DG_ERR_TOO_LARGE);
    /* A good job right after is unaffected by the refused ones. */
    job = make_job("req-ok", "act-ok");
    r = enqueue_wait(f, &job);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.id, "req-ok");
    buf_free(&big);
}

/* ---- other targets ---------------------------------------------------- */

static void auth_and_select_reach_db3(void **state)
{
    struct fixture *f = fixture_new(false, "s3cret");
    struct queue_job job = make_job("req-db", "act-db");
    struct result r;
    redisContext *rc;

    *state = f;
    fixture_connect(f, 3, true);
    r = enqueue_wait(f, &job);
    assert_int_equal(r.err, 0);
    rc = sync_connect(&f->srv, 3);
    assert_non_null(rc);
    assert_int_equal(sync_cmd_int(rc, "XLEN %s", "{digest}:requests"), 1);
    assert_int_equal(sync_cmd_int(rc, "EXISTS %s", "{digest}:req:req-db"), 1);
    redisFree(rc);
    rc = sync_connect(&f->srv, 0);
    assert_non_null(rc);
    assert_int_equal(sync_cmd_int(rc, "EXISTS %s", "{digest}:requests"), 0);
    redisFree(rc);
}

static void wrong_password_never_ready(void **state)
{
    struct fixture *f = fixture_new(false, "s3cret");
    struct queue_job job = make_job("req-x", "act-x");
    struct result r = {0};

    *state = f;
    f->srv.password = "wrong";
    fixture_connect(f, 0, false);
    f->srv.password = "s3cret";
    assert_false(run_until(f, is_ready, f->q, 1000));
    assert_int_equal(queue_enqueue(f->q, &job, on_enqueued, &r), DG_ERR_UNAVAILABLE);
}

static void unix_socket_works(void **state)
{
    struct fixture *f = fixture_new(true, NULL);
    struct queue_job job = make_job("req-u", "act-u");
    struct result r;
    redisContext *rc;

    *state = f;
    fixture_connect(f, 0, true);
    r = enqueue_wait(f, &job);
    assert_int_equal(r.err, 0);
    rc = sync_connect(&f->srv, 0);
    assert_non_null(rc);
    assert_int_equal(sync_cmd_int(rc, "XLEN %s", "{digest}:requests"), 1);
    redisFree(rc);
}

/* A host name goes through uv_getaddrinfo, not hiredis's blocking lookup. */
static void host_name_is_resolved(void **state)
{
    struct fixture *f = fixture_new(false, NULL);

    *state = f;
    f->cfg.redis_kind = REDIS_TCP;
    set_str(&f->cfg.redis_host, "localhost");
    f->cfg.redis_port = f->srv.port;
    f->q = queue_create(&f->loop, &f->cfg, f->metrics);
    queue_start(f->q);
    assert_true(run_until(f, is_ready, f->q, 8000));
}

/* Nothing listens: attempts are refused, calls fail fast, stop is clean. */
static void no_server_then_stop(void **state)
{
    struct fixture *f = fixture_new(false, NULL);
    struct queue_job job = make_job("req-n", "act-n");
    struct result r = {0};

    *state = f;
    redis_server_kill(&f->srv);
    fixture_connect(f, 0, false);
    run_for(f, 400);
    assert_false(queue_ready(f->q));
    /*
     * A refused non-blocking connect surfaces as a poll error, which the 0.14
     * adapter ignores: several failed attempts in 400 ms prove we see it
     * instead of waiting out REDIS_CONNECT_TIMEOUT_MS for each.
     */
    assert_true(metrics_value(f, "digestd_redis_errors_total") >= 2);
    assert_int_equal(queue_enqueue(f->q, &job, on_enqueued, &r), DG_ERR_UNAVAILABLE);
    assert_true(metrics_has(f, "digestd_redis_connected 0\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(enqueue_writes_spec_keys, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(duplicate_returns_first_id, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(store_reference_writes_pairs, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(ack_id_recorded_through_the_batch, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(sync_and_async_count_in_their_minute, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(offline_counts_reach_their_minute_after_reconnect,
                                        setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(noscript_falls_back_to_eval, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(calls_fail_fast_while_down_then_recover, setup_tcp,
                                        teardown),
        cmocka_unit_test_setup_teardown(frozen_redis_times_out_then_recovers, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(stop_finishes_pending_with_closed, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(batch_of_many_in_one_iteration, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(duplicates_within_one_batch, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(reference_keeps_submission_order, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(frozen_redis_fails_whole_batches, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(stop_fails_unsent_batch, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(noscript_fallback_with_batch, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(noscript_keeps_order_across_batches, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(superseded_references_skipped, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(bad_entries_refused_at_submission, setup_tcp, teardown),
        cmocka_unit_test_teardown(auth_and_select_reach_db3, teardown),
        cmocka_unit_test_teardown(wrong_password_never_ready, teardown),
        cmocka_unit_test_teardown(unix_socket_works, teardown),
        cmocka_unit_test_teardown(host_name_is_resolved, teardown),
        cmocka_unit_test_teardown(no_server_then_stop, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
