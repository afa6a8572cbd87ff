/*
 * test_job_store.c: the worker's Redis steps (job_store.h) against a real
 * redis-server. Each test lays out the stream, the group's pending list, the
 * audit record and the conversation reference with blocking hiredis
 * commands, runs one job_store call on the loop through the queue's command
 * connection, then reads Redis back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include <hiredis/hiredis.h>

#include "core/buf.h"
#include "config.h"
#include "store/job_store.h"
#include "core/log.h"
#include "metrics.h"
#include "store/queue.h"
#include "redis_server.h"

#define STREAM "{digest}:requests"
#define DEAD "{digest}:dead"
#define CONV "msteams:19:abc@thread.v2"
#define CONV_KEY "{digest}:conv:" CONV
#define CREATED "1700000000000"
#define FAR_IDLE_MS 600000 /* "idle for ten minutes", set with XCLAIM … IDLE */

struct fixture {
    uv_loop_t loop;
    uv_timer_t tick;
    struct config cfg;
    struct metrics *metrics;
    struct redis_server srv;
    struct queue *q;
    redisContext *rc; /* blocking: set up and check Redis */
    int stopped_calls;
};

/* One job on the stream; job.* point into this struct. */
struct job {
    char id[64];
    char request_id[32];
    char activity_id[32];
    struct job_fields f;
};

/* What any job_store callback reported (copied out of the borrowed reply). */
struct res {
    int calls;
    int err;
    bool got_begin;
    char status[32];
    bool ended;
    bool recorded;
    unsigned attempts;
    char ack[64];
    size_t n_ref;
    char ref[8][2][64];
    size_t n_lost;
    char lost[8][64];
    bool released;
    int fence;
    uint64_t wait_ms;
};

/* ---- loop and callbacks ----------------------------------------------- */

static bool run_until(struct fixture *f, bool (*pred)(void *), void *arg, uint64_t timeout_ms)
{
    return loop_run_until(&f->loop, &f->tick, pred, arg, timeout_ms);
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
    return ((struct res *)arg)->calls > 0;
}

static bool is_stopped(void *arg)
{
    return ((struct fixture *)arg)->stopped_calls > 0;
}

static void on_stopped(struct queue *q, void *data)
{
    ((struct fixture *)data)->stopped_calls++;
}

static void on_begin(int err, const struct job_begin *b, void *data)
{
    struct res *r = data;

    r->calls++;
    r->err = err;
    if (b == NULL)
        return;
    r->got_begin = true;
    snprintf(r->status, sizeof(r->status), "%s",
             b->had_status ? request_status_name(b->status) : "");
    r->ended = b->ended;
    r->attempts = b->attempts;
    snprintf(r->ack, sizeof(r->ack), "%s", b->ack_activity_id);
    r->n_ref = b->n_ref;
    for (size_t i = 0; i < b->n_ref && i < ARRAY_SIZE(r->ref); i++) {
        snprintf(r->ref[i][0], sizeof(r->ref[i][0]), "%s", b->ref_fields[i]);
        snprintf(r->ref[i][1], sizeof(r->ref[i][1]), "%s", b->ref_values[i]);
    }
}

static void on_end(int err, bool recorded, const char *ack_activity_id, void *data)
{
    struct res *r = data;

    r->calls++;
    r->err = err;
    r->recorded = recorded;
    snprintf(r->ack, sizeof(r->ack), "%s", ack_activity_id);
}

static void on_fence(int err, const struct job_fence *fc, void *data)
{
    struct res *r = data;

    r->calls++;
    r->err = err;
    if (!fc)
        return;
    r->fence = (int)fc->answer;
    r->wait_ms = fc->wait_ms;
    snprintf(r->status, sizeof(r->status), "%s", fc->text);
}

static void on_dead(int err, bool recorded, const char *ack_activity_id, void *data)
{
    struct res *r = data;

    r->calls++;
    r->err = err;
    r->recorded = recorded;
    snprintf(r->ack, sizeof(r->ack), "%s", ack_activity_id);
}

static void on_renew(int err, const char *const *lost, size_t n_lost, void *data)
{
    struct res *r = data;

    r->calls++;
    r->err = err;
    r->n_lost = n_lost;
    for (size_t i = 0; i < n_lost && i < ARRAY_SIZE(r->lost); i++)
        snprintf(r->lost[i], sizeof(r->lost[i]), "%s", lost[i]);
}

static void on_release(int err, bool released, void *data)
{
    struct res *r = data;

    r->calls++;
    r->err = err;
    r->released = released;
}

/* The callback came, exactly once (a stray second one would show here). */
static void wait_one(struct fixture *f, struct res *r)
{
    assert_true(run_until(f, has_calls, r, 5000));
    loop_run_for(&f->loop, &f->tick, 20);
    assert_int_equal(r->calls, 1);
}

static void begin(struct fixture *f, const struct job *j, const char *token, uint64_t now,
                  struct res *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(job_store_begin(queue_conn(f->q), &f->cfg, &j->f, token, now, on_begin, r), 0);
    wait_one(f, r);
}

static void delivered_by(struct fixture *f, const struct job *j, const char *consumer,
                         const char *token, const char *result, struct res *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(job_store_delivered(queue_conn(f->q), &f->cfg, &j->f, consumer, token, result,
                                         1500, 2000, on_end, r),
                     0);
    wait_one(f, r);
}

static void delivered(struct fixture *f, const struct job *j, struct res *r)
{
    delivered_by(f, j, "c1", "tok-1", "result-1", r);
}

static void fence(struct fixture *f, const struct job *j, const char *consumer, const char *token,
                  const char *nonce, uint64_t unknown_wait_ms, struct res *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(job_store_fence(queue_conn(f->q), &f->cfg, &j->f, consumer, token, nonce,
                                     unknown_wait_ms, on_fence, r),
                     0);
    wait_one(f, r);
}

static void dead_as(struct fixture *f, const struct job *j, const char *token,
                    enum request_status status, bool stale, struct res *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(job_store_dead(queue_conn(f->q), &f->cfg, &j->f, "c1", token, status,
                                    "upstream 500", 5, stale, 3000, on_dead, r),
                     0);
    wait_one(f, r);
}

/* A dead step of an attempt that is not the record's (another consumer's, say). */
static void dead(struct fixture *f, const struct job *j, enum request_status status, bool stale,
                 struct res *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(job_store_dead(queue_conn(f->q), &f->cfg, &j->f, "c1", "not-the-record's",
                                    status, "upstream 500", 5, stale, 3000, on_dead, r),
                     0);
    wait_one(f, r);
}

static void renew(struct fixture *f, const char *consumer, const char *const *ids, size_t n,
                  struct res *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(job_store_renew(queue_conn(f->q), &f->cfg, consumer, ids, n, on_renew, r), 0);
    wait_one(f, r);
}

static void release(struct fixture *f, const char *consumer, const struct job *j, struct res *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(job_store_release(queue_conn(f->q), &f->cfg, consumer, &j->f, on_release, r),
                     0);
    wait_one(f, r);
}

/* ---- Redis layout and checks ------------------------------------------ */

/*
 * XADDs a job as queue.c does, and when consumer is set reads it into that
 * consumer's pending list (delivery count 1).
 */
static void job_add(struct fixture *f, struct job *j, const char *request_id,
                    const char *test_email, const char *consumer)
{
    redisReply *r;

    memset(j, 0, sizeof(*j));
    snprintf(j->request_id, sizeof(j->request_id), "%s", request_id);
    snprintf(j->activity_id, sizeof(j->activity_id), "act-%s", request_id);
    r = sync_cmd(f->rc,
                 "XADD " STREAM " * request_id %s activity_id %s audience %s test_email %s "
                 "conv %s created_ms %s",
                 j->request_id, j->activity_id, "aud-x", test_email, CONV, CREATED);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(j->id, sizeof(j->id), "%s", r->str);
    freeReplyObject(r);
    j->f = (struct job_fields){.stream_id = j->id,
                               .request_id = j->request_id,
                               .activity_id = j->activity_id,
                               .audience = "aud-x",
                               .test_email = test_email,
                               .conv = CONV,
                               .created_ms = CREATED};
    if (consumer == NULL)
        return;
    r = sync_cmd(f->rc, "XREADGROUP GROUP workers %s COUNT 1 STREAMS " STREAM " >", consumer);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[0]->element[1]->element[0]->element[0]->str, j->id);
    freeReplyObject(r);
}

/* The audit record as queue.c writes it, with status and attempts given. */
static void record_set(struct fixture *f, const struct job *j, const char *status,
                       const char *attempts)
{
    freeReplyObject(sync_cmd(f->rc,
                             "HSET {digest}:req:%s status %s mode async audience aud-x "
                             "test_email %s conv %s activity_id %s created_ms %s attempts %s "
                             "ack_activity_id ack-1 attempt_token tok-1",
                             j->request_id, status, j->f.test_email, CONV, j->activity_id, CREATED,
                             attempts));
}

static void ref_set(struct fixture *f)
{
    freeReplyObject(sync_cmd(f->rc, "HSET " CONV_KEY " service_url https://smba.example/emea/ "
                                    "channel_id msteams stale 0"));
}

/* HGET key field equals want (NULL: the field or key is missing). */
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

static void assert_rec(struct fixture *f, const struct job *j, const char *field, const char *want)
{
    char key[96];

    snprintf(key, sizeof(key), "{digest}:req:%s", j->request_id);
    assert_hget(f, key, field, want);
}

/* XPENDING for one id: false when it is not pending, else its entry. */
static bool pending(struct fixture *f, const char *id, char *consumer, size_t size, long long *idle,
                    long long *count)
{
    redisReply *r = sync_cmd(f->rc, "XPENDING " STREAM " workers %s %s 1", id, id);
    bool found = r->type == REDIS_REPLY_ARRAY && r->elements == 1;

    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    if (found) {
        const redisReply *e = r->element[0];
        if (consumer != NULL)
            snprintf(consumer, size, "%s", e->element[1]->str);
        if (idle != NULL)
            *idle = e->element[2]->integer;
        if (count != NULL)
            *count = e->element[3]->integer;
    }
    freeReplyObject(r);
    return found;
}

static bool is_pending(struct fixture *f, const char *id)
{
    return pending(f, id, NULL, 0, NULL, NULL);
}

/* Value of field in a flat field/value reply array, NULL when absent. */
static const char *pair_get(const redisReply *arr, const char *field)
{
    for (size_t i = 0; i + 1 < arr->elements; i += 2)
        if (strcmp(arr->element[i]->str, field) == 0)
            return arr->element[i + 1]->str;
    return NULL;
}

/* A reply flattened to text, to compare whole states before and after. */
static void reply_dump(struct buf *b, const redisReply *r)
{
    switch (r->type) {
    case REDIS_REPLY_ARRAY:
        assert_int_equal(buf_append_str(b, "["), 0);
        for (size_t i = 0; i < r->elements; i++)
            reply_dump(b, r->element[i]);
        assert_int_equal(buf_append_str(b, "]"), 0);
        break;
    case REDIS_REPLY_INTEGER:
        assert_int_equal(buf_printf(b, "%lld,", r->integer), 0);
        break;
    case REDIS_REPLY_NIL:
        assert_int_equal(buf_append_str(b, "nil,"), 0);
        break;
    default:
        assert_int_equal(buf_printf(b, "'%s',", r->str), 0);
    }
}

/* Everything a step may touch for job j (idle times left out: they tick). */
static char *state_of(struct fixture *f, const struct job *j)
{
    static const char *const cmds[] = {"HGETALL {digest}:req:%s", "XRANGE " STREAM " - +",
                                       "XRANGE " DEAD " - +", "HGETALL " CONV_KEY,
                                       "XPENDING " STREAM " workers"};
    struct buf b;

    buf_init(&b, 1 << 16);
    for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
        redisReply *r = sync_cmd(f->rc, cmds[i], j->request_id);
        reply_dump(&b, r);
        freeReplyObject(r);
    }
    return buf_take(&b);
}

/* ---- fixture ---------------------------------------------------------- */

static void set_str(char **field, const char *v)
{
    xfree(*field);
    *field = v != NULL ? xstrdup(v) : NULL;
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->tick), 0);
    config_defaults(&f->cfg);
    log_setup(LOG_LEVEL_WARN, false);
    f->metrics = metrics_create();
    redis_server_start(&f->srv, false, NULL);
    f->cfg.redis_kind = REDIS_TCP;
    set_str(&f->cfg.redis_host, "127.0.0.1");
    f->cfg.redis_port = f->srv.port;
    /* The queue creates the group (XGROUP CREATE … MKSTREAM) once connected. */
    f->q = queue_create(&f->loop, &f->cfg, f->metrics);
    queue_start(f->q);
    assert_true(run_until(f, is_ready, f->q, 5000));
    f->rc = sync_connect(&f->srv, 0);
    assert_non_null(f->rc);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f->q != NULL) {
        queue_stop(f->q, on_stopped, f);
        assert_true(run_until(f, is_stopped, f, 5000));
        queue_free(f->q);
    }
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    if (f->rc != NULL)
        redisFree(f->rc);
    redis_server_cleanup(&f->srv);
    metrics_free(f->metrics);
    config_free(&f->cfg);
    xfree(f);
    return 0;
}

/* ---- begin ------------------------------------------------------------ */

static void begin_counts_attempts_and_reads_reference(void **state)
{
    struct fixture *f = *state;
    struct job j;
    struct res r;

    job_add(f, &j, "req-1", "t@example.com", "c1");
    record_set(f, &j, "queued", "0");
    ref_set(f);

    begin(f, &j, "try-1", 1000, &r);
    assert_int_equal(r.err, 0);
    assert_true(r.got_begin);
    assert_string_equal(r.status, "queued");
    assert_false(r.ended);
    assert_int_equal(r.attempts, 1);
    assert_string_equal(r.ack, "ack-1");
    assert_int_equal(r.n_ref, 3);
    assert_string_equal(r.ref[0][0], "service_url");
    assert_string_equal(r.ref[0][1], "https://smba.example/emea/");
    assert_string_equal(r.ref[1][0], "channel_id");
    assert_string_equal(r.ref[1][1], "msteams");
    assert_string_equal(r.ref[2][0], "stale");
    assert_string_equal(r.ref[2][1], "0");
    assert_rec(f, &j, "status", "processing");
    assert_rec(f, &j, "attempts", "1");
    assert_rec(f, &j, "started_ms", "1000");

    /* The next attempt counts on, but started_ms keeps the first start. */
    begin(f, &j, "try-2", 2000, &r);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.status, "processing");
    assert_false(r.ended);
    assert_int_equal(r.attempts, 2);
    assert_rec(f, &j, "attempts", "2");
    assert_rec(f, &j, "started_ms", "1000");
    /* The same begin sent again (its reply was lost) does not count again. */
    begin(f, &j, "try-2", 3000, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.attempts, 2);
    assert_rec(f, &j, "attempts", "2");
    /* Beginning never acknowledges. */
    assert_true(is_pending(f, j.id));
}

static void begin_on_ended_job_only_acks(void **state)
{
    static const char *const ended[] = {"delivered", "dead", "failed"};
    struct fixture *f = *state;

    ref_set(f);
    for (size_t i = 0; i < ARRAY_SIZE(ended); i++) {
        struct job j;
        struct res r;
        char rid[16];

        snprintf(rid, sizeof(rid), "req-e%zu", i);
        job_add(f, &j, rid, "", "c1");
        record_set(f, &j, ended[i], "2");
        assert_true(is_pending(f, j.id));

        begin(f, &j, "try-1", 1000, &r);
        assert_int_equal(r.err, 0);
        assert_true(r.ended);
        assert_string_equal(r.status, ended[i]);
        assert_false(is_pending(f, j.id));
        assert_rec(f, &j, "status", ended[i]);
        assert_rec(f, &j, "attempts", "2");
        assert_rec(f, &j, "started_ms", NULL);
    }
}

static void begin_recreates_missing_record(void **state)
{
    struct fixture *f = *state;
    char key[96];
    struct job j;
    struct res r;
    long long ttl;

    job_add(f, &j, "req-m", "t@example.com", "c1");
    /* No record and no reference: both expired, say. */
    begin(f, &j, "try-1", 1000, &r);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.status, "");
    assert_false(r.ended);
    assert_int_equal(r.attempts, 1);
    assert_string_equal(r.ack, "");
    assert_int_equal(r.n_ref, 0);

    assert_rec(f, &j, "status", "processing");
    assert_rec(f, &j, "mode", "async");
    assert_rec(f, &j, "audience", "aud-x");
    assert_rec(f, &j, "test_email", "t@example.com");
    assert_rec(f, &j, "conv", CONV);
    assert_rec(f, &j, "activity_id", "act-req-m");
    assert_rec(f, &j, "created_ms", CREATED);
    assert_rec(f, &j, "attempts", "1");
    assert_rec(f, &j, "started_ms", "1000");
    snprintf(key, sizeof(key), "{digest}:req:%s", j.request_id);
    ttl = sync_cmd_int(f->rc, "TTL %s", key);
    assert_true(ttl > 0);
    assert_true(ttl <= (long long)f->cfg.request_ttl_s);
    assert_true(is_pending(f, j.id));
}

/* A Redis error inside the script reaches the callback as PROTOCOL. */
static void begin_reports_script_error(void **state)
{
    struct fixture *f = *state;
    struct job j;
    struct res r;

    job_add(f, &j, "req-w", "", "c1");
    freeReplyObject(sync_cmd(f->rc, "SET {digest}:req:req-w not-a-hash"));
    begin(f, &j, "try-1", 1000, &r);
    assert_int_equal(r.err, DG_ERR_PROTOCOL);
    assert_false(r.got_begin);
}

/* ---- delivered --------------------------------------------------------- */

static void delivered_records_and_acks_once(void **state)
{
    struct fixture *f = *state;
    char *before, *after;
    char key[96];
    struct job j;
    struct res r;

    job_add(f, &j, "req-d", "", "c1");
    record_set(f, &j, "processing", "1");
    freeReplyObject(sync_cmd(f->rc, "HSET {digest}:req:req-d last_error timeout"));

    delivered(f, &j, &r);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.ack, "ack-1");
    assert_rec(f, &j, "status", "delivered");
    assert_rec(f, &j, "delivered_ms", "2000");
    assert_rec(f, &j, "fetched_ms", "1500");
    assert_rec(f, &j, "result_activity_id", "result-1");
    assert_rec(f, &j, "last_error", "");
    assert_rec(f, &j, "attempts", "1");
    assert_false(is_pending(f, j.id));
    /* The record had no TTL (record_set): it gets one. */
    snprintf(key, sizeof(key), "{digest}:req:%s", j.request_id);
    assert_true(sync_cmd_int(f->rc, "TTL %s", key) > 0);

    /* Sent again (a lost reply): same answer, nothing else changes. */
    before = state_of(f, &j);
    delivered(f, &j, &r);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.ack, "ack-1");
    after = state_of(f, &j);
    assert_string_equal(after, before);
    xfree(before);
    xfree(after);
    /* Its minute (now 2000 ms: epoch minute 0) counts it once. */
    assert_hget(f, "{digest}:minute:0", "delivered", "1");
}

static void make_idle(struct fixture *f, const char *consumer, const char *id);

/*
 * Only the attempt that holds the job records it delivered: another
 * attempt's token, another consumer's entry, or an earlier delivered are
 * refused, and nothing the holder wrote is overwritten.
 */
static void delivered_refuses_an_attempt_that_does_not_hold_the_job(void **state)
{
    struct fixture *f = *state;
    struct job j;
    struct res r;

    job_add(f, &j, "req-h", "", "c1");
    record_set(f, &j, "processing", "2");
    /* An older attempt of this consumer (its token was replaced by a new begin). */
    delivered_by(f, &j, "c1", "tok-0", "late-1", &r);
    assert_int_equal(r.err, 0);
    assert_false(r.recorded);
    assert_string_equal(r.ack, ""); /* nobody updates the acknowledgment for it */
    assert_rec(f, &j, "status", "processing");
    assert_rec(f, &j, "late_result_activity_id", "late-1");
    assert_true(is_pending(f, j.id));
    /* Another consumer, with the right token even: not its entry. */
    delivered_by(f, &j, "c2", "tok-1", "late-2", &r);
    assert_false(r.recorded);
    assert_rec(f, &j, "late_result_activity_id", "late-1"); /* kept once */
    assert_true(is_pending(f, j.id));
    /* The holder records it; then nobody else can, and a resend by the holder is the same. */
    delivered(f, &j, &r);
    assert_true(r.recorded);
    assert_string_equal(r.ack, "ack-1");
    delivered_by(f, &j, "c2", "tok-9", "result-2", &r);
    assert_false(r.recorded);
    assert_string_equal(r.ack, "");
    assert_rec(f, &j, "result_activity_id", "result-1");
    delivered(f, &j, &r);
    assert_true(r.recorded);
    assert_rec(f, &j, "result_activity_id", "result-1");
    assert_hget(f, "{digest}:minute:0", "delivered", "1");
}

/*
 * The fence: only the holder may send; the send is marked with Redis's
 * clock and the lease renewed; a send marked by another process is waited
 * for, then sent again as "unknown"; one of this process is not; a late
 * result is handed over instead of a send.
 */
static void fence_marks_the_holders_send_only(void **state)
{
    struct fixture *f = *state;
    struct job j;
    struct res r;
    char consumer[64];
    long long idle;

    job_add(f, &j, "req-f", "", "c1");
    record_set(f, &j, "processing", "1");
    make_idle(f, "c1", j.id);
    fence(f, &j, "c2", "tok-1", "n2", 60000, &r);
    assert_int_equal(r.fence, JOB_FENCE_NOT_OURS);
    fence(f, &j, "c1", "n1/x/0", "n1", 60000, &r);
    assert_int_equal(r.fence, JOB_FENCE_NOT_OURS); /* not the record's attempt */
    assert_rec(f, &j, "send_token", NULL);
    fence(f, &j, "c1", "tok-1", "n1", 60000, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.fence, JOB_FENCE_SEND);
    assert_rec(f, &j, "send_token", "tok-1");
    assert_rec(f, &j, "send_consumer", "c1");
    assert_true(pending(f, j.id, consumer, sizeof(consumer), &idle, NULL));
    assert_true(idle < 1000); /* renewed in the same step */
    {
        redisReply *v = sync_cmd(f->rc, "GET {digest}:schema");
        assert_string_equal(v->str, DG_STRINGIFY(JOB_STORE_SCHEMA));
        freeReplyObject(v);
    }

    /* c1 vanished; c2 claims and begins (a new token): c1's send may still be in flight. */
    freeReplyObject(sync_cmd(f->rc, "XCLAIM " STREAM " workers c2 0 %s JUSTID", j.id));
    freeReplyObject(sync_cmd(f->rc, "HSET {digest}:req:req-f attempt_token n2/x/1"));
    fence(f, &j, "c2", "n2/x/1", "n2", 60000, &r);
    assert_int_equal(r.fence, JOB_FENCE_WAIT);
    assert_true(r.wait_ms > 50000 && r.wait_ms <= 60000);
    fence(f, &j, "c2", "n2/x/1", "n2", 0, &r);
    assert_int_equal(r.fence, JOB_FENCE_SEND_UNKNOWN);
    assert_rec(f, &j, "send_token", "n2/x/1");
    /* A later attempt of the same process knows its own outcome: no wait, not unknown. */
    freeReplyObject(sync_cmd(f->rc, "HSET {digest}:req:req-f attempt_token n2/x/2"));
    fence(f, &j, "c2", "n2/x/2", "n2", 60000, &r);
    assert_int_equal(r.fence, JOB_FENCE_SEND);

    /* c1 wakes up with a 2xx: kept as late; c2's next fence hands it over. */
    delivered_by(f, &j, "c1", "tok-1", "late-1", &r);
    assert_false(r.recorded);
    fence(f, &j, "c2", "n2/x/2", "n2", 60000, &r);
    assert_int_equal(r.fence, JOB_FENCE_LATE);
    assert_string_equal(r.status, "late-1");
    delivered_by(f, &j, "c2", "n2/x/2", "late-1", &r);
    assert_true(r.recorded);
    assert_rec(f, &j, "status", "delivered");
    assert_rec(f, &j, "result_activity_id", "late-1");
    /* Ended: nobody may send any more. */
    fence(f, &j, "c2", "n2/x/2", "n2", 60000, &r);
    assert_int_equal(r.fence, JOB_FENCE_NOT_OURS);
    assert_string_equal(r.status, "delivered");
}

/*
 * A pending entry deleted from the stream (XDEL by hand): XCLAIM drops it
 * from the pending list (Redis 7), so nobody holds the job any more and the
 * fence must not answer "send", or the result goes out for a job whose
 * delivered step is then refused and which nobody ever ends.
 */
static void fence_refuses_an_entry_deleted_from_the_stream(void **state)
{
    struct fixture *f = *state;
    struct job j;
    struct res r;
    char consumer[64];
    long long idle;

    job_add(f, &j, "req-x", "", "c1");
    record_set(f, &j, "processing", "1");
    freeReplyObject(sync_cmd(f->rc, "XDEL " STREAM " %s", j.id));
    assert_true(pending(f, j.id, consumer, sizeof(consumer), &idle, NULL));
    fence(f, &j, "c1", "tok-1", "n1", 60000, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.fence, JOB_FENCE_NOT_OURS);
    assert_rec(f, &j, "send_token", NULL);
}

/* An end step of a consumer that does not hold the entry changes nothing. */
static void dead_by_a_consumer_that_lost_the_job_changes_nothing(void **state)
{
    struct fixture *f = *state;
    struct job j;
    struct res r;
    char *before, *after;

    job_add(f, &j, "req-l", "", "c2");
    record_set(f, &j, "processing", "1");
    before = state_of(f, &j);
    dead(f, &j, REQUEST_STATUS_FAILED, false, &r); /* as c1 */
    assert_int_equal(r.err, 0);
    assert_false(r.recorded);
    after = state_of(f, &j);
    assert_string_equal(before, after);
    assert_true(is_pending(f, j.id));
    xfree(before);
    xfree(after);
}

/* ---- dead -------------------------------------------------------------- */

static void dead_letters_once_and_acks(void **state)
{
    static const char *const want[] = {
        "request_id", "req-x", "activity_id", "act-req-x", "audience",   "aud-x",
        "test_email", "",      "conv",        CONV,        "created_ms", CREATED,
    };
    struct fixture *f = *state;
    char *before, *after;
    const redisReply *fields;
    redisReply *x;
    struct job j;
    struct res r;

    job_add(f, &j, "req-x", "", "c1");
    record_set(f, &j, "processing", "5");
    ref_set(f);
    freeReplyObject(sync_cmd(f->rc, "HSET {digest}:req:req-x send_token n/x/1 send_ms 1"));

    dead(f, &j, REQUEST_STATUS_DEAD, false, &r);
    assert_int_equal(r.err, 0);
    assert_true(r.recorded);
    assert_rec(f, &j, "send_token", NULL); /* ended knowingly: a requeue does not wait on it */
    assert_string_equal(r.ack, "ack-1");
    assert_false(is_pending(f, j.id));
    assert_rec(f, &j, "status", "dead");
    assert_rec(f, &j, "last_error", "upstream 500");
    assert_rec(f, &j, "attempts", "5");
    assert_hget(f, CONV_KEY, "stale", "0");

    x = sync_cmd(f->rc, "XRANGE " DEAD " - +");
    assert_int_equal(x->elements, 1);
    fields = x->element[0]->element[1];
    /* The job's own fields first, in stream order (SPEC §5 "original fields"). */
    assert_true(fields->elements >= ARRAY_SIZE(want) + 6);
    for (size_t i = 0; i < ARRAY_SIZE(want); i++)
        assert_string_equal(fields->element[i]->str, want[i]);
    assert_string_equal(pair_get(fields, "reason"), "upstream 500");
    assert_string_equal(pair_get(fields, "attempts"), "5");
    assert_string_equal(pair_get(fields, "failed_ms"), "3000");
    /* The record names its dead entry, for a requeue to find in O(1). */
    assert_rec(f, &j, "dead_id", x->element[0]->element[0]->str);
    freeReplyObject(x);

    /* Sent again: still one dead entry, nothing else changes. */
    before = state_of(f, &j);
    dead(f, &j, REQUEST_STATUS_DEAD, false, &r);
    assert_int_equal(r.err, 0);
    assert_false(r.recorded); /* nobody is told twice */
    assert_string_equal(r.ack, "ack-1");
    after = state_of(f, &j);
    assert_string_equal(after, before);
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", DEAD), 1);
    xfree(before);
    xfree(after);
    /* Counted once, under its status, in its minute (3000 ms: minute 0). */
    assert_hget(f, "{digest}:minute:0", "dead", "1");
    assert_hget(f, "{digest}:minute:0", "failed", NULL);
}

/*
 * Our own dead step whose reply was lost, sent again: it still says
 * "recorded" (the user is yet to be told), and adds nothing to Redis.
 */
static void dead_sent_again_by_its_attempt_still_reports_recorded(void **state)
{
    struct fixture *f = *state;
    struct job j;
    struct res r;

    job_add(f, &j, "req-t", "", "c1");
    record_set(f, &j, "processing", "2");
    freeReplyObject(sync_cmd(f->rc, "HSET {digest}:req:req-t attempt_token tok-2"));
    ref_set(f);

    dead_as(f, &j, "tok-2", REQUEST_STATUS_DEAD, false, &r);
    assert_int_equal(r.err, 0);
    assert_true(r.recorded);
    dead_as(f, &j, "tok-2", REQUEST_STATUS_DEAD, false, &r);
    assert_int_equal(r.err, 0);
    assert_true(r.recorded);
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", DEAD), 1);
    /* Another attempt's step, after the end was written: not recorded. */
    dead_as(f, &j, "tok-3", REQUEST_STATUS_DEAD, false, &r);
    assert_false(r.recorded);
}

/* Another consumer delivered it meanwhile: no dead entry, the record stays delivered. */
static void dead_leaves_a_delivered_job_alone(void **state)
{
    struct fixture *f = *state;
    struct job j;
    struct res r;

    job_add(f, &j, "req-d", "", "c1");
    record_set(f, &j, "delivered", "1");
    ref_set(f);

    dead(f, &j, REQUEST_STATUS_FAILED, false, &r);
    assert_int_equal(r.err, 0);
    assert_false(r.recorded);
    assert_rec(f, &j, "status", "delivered");
    assert_int_equal(sync_cmd_int(f->rc, "EXISTS %s", DEAD), 0);
    assert_false(is_pending(f, j.id));
}

static void dead_marks_stale_only_when_asked_and_present(void **state)
{
    struct fixture *f = *state;
    struct job a, b;
    struct res r;

    /* A failed job whose connector said 403: the reference goes stale. */
    job_add(f, &a, "req-s", "", "c1");
    record_set(f, &a, "processing", "1");
    ref_set(f);
    dead(f, &a, REQUEST_STATUS_FAILED, true, &r);
    assert_int_equal(r.err, 0);
    assert_rec(f, &a, "status", "failed");
    assert_hget(f, CONV_KEY, "stale", "1");
    assert_hget(f, CONV_KEY, "service_url", "https://smba.example/emea/");
    assert_false(is_pending(f, a.id));

    /* No reference left: asking for stale must not create a stub of one. */
    freeReplyObject(sync_cmd(f->rc, "DEL " CONV_KEY));
    job_add(f, &b, "req-t", "", "c1");
    record_set(f, &b, "processing", "1");
    dead(f, &b, REQUEST_STATUS_FAILED, true, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(sync_cmd_int(f->rc, "EXISTS %s", CONV_KEY), 0);
    assert_rec(f, &b, "status", "failed");
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", DEAD), 2);
}

/* ---- renew ------------------------------------------------------------- */

/* Makes id look long idle (and delivered 3 times) under consumer. */
static void make_idle(struct fixture *f, const char *consumer, const char *id)
{
    freeReplyObject(sync_cmd(f->rc, "XCLAIM " STREAM " workers %s 0 %s IDLE %d RETRYCOUNT 3 JUSTID",
                             consumer, id, FAR_IDLE_MS));
}

static void renew_resets_idle_of_ours_and_reports_lost(void **state)
{
    struct fixture *f = *state;
    struct job a, b, other, acked;
    const char *ids[4];
    char who[32];
    long long idle, count;
    struct res r;

    job_add(f, &a, "req-a", "", "c1");
    job_add(f, &b, "req-b", "", "c1");
    job_add(f, &other, "req-o", "", "c2");
    job_add(f, &acked, "req-k", "", "c1");
    make_idle(f, "c1", a.id);
    make_idle(f, "c1", b.id);
    make_idle(f, "c2", other.id);
    assert_int_equal(sync_cmd_int(f->rc, "XACK " STREAM " workers %s", acked.id), 1);
    assert_true(pending(f, a.id, NULL, 0, &idle, &count));
    assert_true(idle >= FAR_IDLE_MS);

    ids[0] = a.id;
    ids[1] = other.id;
    ids[2] = b.id;
    ids[3] = acked.id;
    renew(f, "c1", ids, 4, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.n_lost, 2);
    assert_string_equal(r.lost[0], other.id);
    assert_string_equal(r.lost[1], acked.id);

    for (size_t i = 0; i < 2; i++) {
        const char *id = i == 0 ? a.id : b.id;
        assert_true(pending(f, id, who, sizeof(who), &idle, &count));
        assert_string_equal(who, "c1");
        assert_true(idle < 5000);
        assert_int_equal(count, 3); /* JUSTID: not a new delivery */
    }
    /* Someone else's job is left alone, and an acked one stays acked. */
    assert_true(pending(f, other.id, who, sizeof(who), &idle, &count));
    assert_string_equal(who, "c2");
    assert_true(idle >= FAR_IDLE_MS);
    assert_int_equal(count, 3);
    assert_false(is_pending(f, acked.id));
}

static void renew_refuses_empty_set(void **state)
{
    struct fixture *f = *state;
    const char *ids[1] = {"0-1"};
    struct res r = {0};

    assert_int_equal(job_store_renew(queue_conn(f->q), &f->cfg, "c1", ids, 0, on_renew, &r),
                     DG_ERR_INVALID);
    loop_run_for(&f->loop, &f->tick, 50);
    assert_int_equal(r.calls, 0);
}

/* The most ids one call takes, and one more. */
static void renew_takes_a_full_chunk(void **state)
{
    static char names[JOB_STORE_MAX_RENEW + 1][24];
    const char *ids[JOB_STORE_MAX_RENEW + 1];
    struct fixture *f = *state;
    struct res r = {0};
    size_t i;

    for (i = 0; i <= JOB_STORE_MAX_RENEW; i++) {
        snprintf(names[i], sizeof(names[i]), "0-%zu", i + 1);
        ids[i] = names[i];
    }
    assert_int_equal(job_store_renew(queue_conn(f->q), &f->cfg, "c1", ids, JOB_STORE_MAX_RENEW + 1,
                                     on_renew, &r),
                     DG_ERR_INVALID);
    renew(f, "c1", ids, JOB_STORE_MAX_RENEW, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.n_lost, JOB_STORE_MAX_RENEW); /* none of them is pending */
}

/* ---- release ----------------------------------------------------------- */

static void release_requeues_same_fields(void **state)
{
    struct fixture *f = *state;
    redisReply *old, *x;
    struct job j;
    struct res r;

    job_add(f, &j, "req-r", "t@example.com", "c1");
    record_set(f, &j, "processing", "1");
    old = sync_cmd(f->rc, "XRANGE " STREAM " %s %s", j.id, j.id);
    assert_int_equal(old->elements, 1);

    release(f, "c1", &j, &r);
    assert_int_equal(r.err, 0);
    assert_true(r.released);
    assert_false(is_pending(f, j.id));
    assert_rec(f, &j, "status", "queued");
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", STREAM), 2);

    /* The copy is new, unread (another worker gets it next) and identical. */
    x = sync_cmd(f->rc, "XREADGROUP GROUP workers c3 COUNT 1 STREAMS " STREAM " >");
    assert_int_equal(x->type, REDIS_REPLY_ARRAY);
    {
        const redisReply *entry = x->element[0]->element[1]->element[0];
        const redisReply *want = old->element[0]->element[1];
        assert_string_not_equal(entry->element[0]->str, j.id);
        /* The record names the new entry. */
        assert_rec(f, &j, "stream_id", entry->element[0]->str);
        assert_int_equal(entry->element[1]->elements, want->elements);
        for (size_t i = 0; i < want->elements; i++)
            assert_string_equal(entry->element[1]->element[i]->str, want->element[i]->str);
    }
    freeReplyObject(x);
    freeReplyObject(old);
}

static void release_refuses_job_not_ours(void **state)
{
    struct fixture *f = *state;
    char *before, *after;
    struct job j, done;
    char who[32];
    struct res r;

    job_add(f, &j, "req-n", "", "c2");
    record_set(f, &j, "processing", "1");
    before = state_of(f, &j);
    release(f, "c1", &j, &r);
    assert_int_equal(r.err, 0);
    assert_false(r.released);
    after = state_of(f, &j);
    assert_string_equal(after, before);
    assert_true(pending(f, j.id, who, sizeof(who), NULL, NULL));
    assert_string_equal(who, "c2");
    xfree(before);
    xfree(after);

    /* Already acknowledged (say, delivered meanwhile): not ours either. */
    job_add(f, &done, "req-q", "", "c1");
    record_set(f, &done, "delivered", "1");
    assert_int_equal(sync_cmd_int(f->rc, "XACK " STREAM " workers %s", done.id), 1);
    release(f, "c1", &done, &r);
    assert_int_equal(r.err, 0);
    assert_false(r.released);
    assert_rec(f, &done, "status", "delivered");
    assert_int_equal(sync_cmd_int(f->rc, "XLEN %s", STREAM), 2);
}

/* ---- submission failures ---------------------------------------------- */

/* Every call refused at submission with want, and no callback ever. */
static void all_refused(struct fixture *f, int want)
{
    struct redis_conn *c = queue_conn(f->q);
    struct job j = {.f = {.stream_id = "1-0",
                          .request_id = "req-z",
                          .activity_id = "act-z",
                          .audience = "aud-x",
                          .test_email = "",
                          .conv = CONV,
                          .created_ms = CREATED}};
    const char *ids[1] = {"1-0"};
    struct res r = {0};

    assert_int_equal(job_store_begin(c, &f->cfg, &j.f, "t", 1, on_begin, &r), want);
    assert_int_equal(job_store_delivered(c, &f->cfg, &j.f, "c1", "t", "res", 1, 2, on_end, &r),
                     want);
    assert_int_equal(job_store_dead(c, &f->cfg, &j.f, "c1", "t", REQUEST_STATUS_DEAD, "x", 5, true,
                                    3, on_dead, &r),
                     want);
    assert_int_equal(job_store_fence(c, &f->cfg, &j.f, "c1", "t", "n", 1, on_fence, &r), want);
    assert_int_equal(job_store_renew(c, &f->cfg, "c1", ids, 1, on_renew, &r), want);
    assert_int_equal(job_store_release(c, &f->cfg, "c1", &j.f, on_release, &r), want);
    loop_run_for(&f->loop, &f->tick, 200);
    assert_int_equal(r.calls, 0);
}

/* Only dead and failed end a job without a result: anything else is refused, nothing sent. */
static void dead_refuses_a_status_that_does_not_end_a_job(void **state)
{
    static const enum request_status wrong[] = {REQUEST_STATUS_QUEUED, REQUEST_STATUS_PROCESSING,
                                                REQUEST_STATUS_DELIVERED};
    struct fixture *f = *state;
    struct job j;
    struct res r = {0};
    char *before, *after;

    job_add(f, &j, "req-w", "", "c1");
    record_set(f, &j, "processing", "1");
    before = state_of(f, &j);
    for (size_t i = 0; i < ARRAY_SIZE(wrong); i++)
        assert_int_equal(job_store_dead(queue_conn(f->q), &f->cfg, &j.f, "c1", "t", wrong[i], "x",
                                        1, false, 3000, on_dead, &r),
                         DG_ERR_INVALID);
    loop_run_for(&f->loop, &f->tick, 100);
    assert_int_equal(r.calls, 0);
    after = state_of(f, &j);
    assert_string_equal(before, after);
    xfree(before);
    xfree(after);
}

static void calls_fail_at_submission_while_down(void **state)
{
    struct fixture *f = *state;

    redis_server_kill(&f->srv);
    assert_true(run_until(f, is_down, f->q, 5000));
    all_refused(f, DG_ERR_UNAVAILABLE);
}

static void calls_fail_at_submission_after_stop(void **state)
{
    struct fixture *f = *state;

    queue_stop(f->q, on_stopped, f);
    assert_true(run_until(f, is_stopped, f, 5000));
    all_refused(f, DG_ERR_CLOSED);
    queue_free(f->q);
    f->q = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(begin_counts_attempts_and_reads_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(begin_on_ended_job_only_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(begin_recreates_missing_record, setup, teardown),
        cmocka_unit_test_setup_teardown(begin_reports_script_error, setup, teardown),
        cmocka_unit_test_setup_teardown(delivered_records_and_acks_once, setup, teardown),
        cmocka_unit_test_setup_teardown(delivered_refuses_an_attempt_that_does_not_hold_the_job,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(fence_marks_the_holders_send_only, setup, teardown),
        cmocka_unit_test_setup_teardown(fence_refuses_an_entry_deleted_from_the_stream, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(dead_by_a_consumer_that_lost_the_job_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(dead_letters_once_and_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(dead_leaves_a_delivered_job_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(dead_sent_again_by_its_attempt_still_reports_recorded,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(dead_marks_stale_only_when_asked_and_present, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(renew_resets_idle_of_ours_and_reports_lost, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(renew_refuses_empty_set, setup, teardown),
        cmocka_unit_test_setup_teardown(renew_takes_a_full_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown(release_requeues_same_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(release_refuses_job_not_ours, setup, teardown),
        cmocka_unit_test_setup_teardown(dead_refuses_a_status_that_does_not_end_a_job, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(calls_fail_at_submission_while_down, setup, teardown),
        cmocka_unit_test_setup_teardown(calls_fail_at_submission_after_stop, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
