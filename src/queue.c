/*
 * queue.c: the job queue on Redis streams (see queue.h and SPEC §5).
 *
 * Today it owns one command connection (enqueue, references, setup). The
 * worker side will add a second struct redis_conn for the blocking
 * XREADGROUP (replies are FIFO, so a blocked read must not sit in front of
 * XADD/XACK) plus XACK / XAUTOCLAIM / dead-letter commands on the command
 * connection; stop already counts connections so that is an addition, not a
 * reshaping.
 */
#include "queue.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "buf.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"

#define QUEUE_GROUP "workers"
#define QUEUE_MAX_REF_FIELDS 64          /* conversation reference pairs per call */
#define QUEUE_MAX_ARGS_BYTES (64 * 1024) /* one enqueue or reference command */

/*
 * The enqueue, atomically. KEYS: 1 conversation reference, 2 dedup, 3 audit
 * record, 4 stream (all under one hash tag, so it also runs on a Cluster).
 * ARGV: 1 request_id, 2 dedup TTL s, 3 request TTL s, 4 mode, 5 audience,
 * 6 test_email, 7 conv, 8 activity_id, 9 created_ms, 10 n reference pairs,
 * 11.. the pairs. Every accepted activity refreshes the reference, duplicates
 * included; a duplicate writes nothing else and returns the first id.
 * Returns {0, id} for a new job, {1, first id} for a duplicate.
 */
static const char enqueue_lua[] =
    "local n = tonumber(ARGV[10])\n"
    "if n > 0 then\n"
    "  redis.call('HSET', KEYS[1], unpack(ARGV, 11, 10 + 2 * n))\n"
    "end\n"
    "if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2]) then\n"
    "  return {1, redis.call('GET', KEYS[2])}\n"
    "end\n"
    "redis.call('HSET', KEYS[3], 'status', 'queued', 'mode', ARGV[4], 'audience', ARGV[5],\n"
    "  'test_email', ARGV[6], 'conv', ARGV[7], 'activity_id', ARGV[8],\n"
    "  'created_ms', ARGV[9], 'attempts', '0')\n"
    "redis.call('EXPIRE', KEYS[3], ARGV[3])\n"
    "redis.call('XADD', KEYS[4], '*', 'request_id', ARGV[1], 'activity_id', ARGV[8],\n"
    "  'audience', ARGV[5], 'test_email', ARGV[6], 'conv', ARGV[7], 'created_ms', ARGV[9])\n"
    "return {0, ARGV[1]}\n";

struct queue {
    uv_loop_t *loop;
    const struct config *cfg;
    struct metrics *metrics;
    struct redis_conn *conn; /* commands; the worker's reader will be a second one */
    char *stream_key;        /* {P}:requests */
    char sha[41];            /* of enqueue_lua, from SCRIPT LOAD */
    bool group_ok;           /* XGROUP CREATE answered on this connection */
    bool script_ok;          /* SCRIPT LOAD answered on this connection */
    bool setup_failed_logged;
    bool stopping;
    unsigned conns_open; /* connections not yet stopped */
    queue_stopped_cb stopped_cb;
    void *stopped_data;
};

/*
 * A command's arguments packed in one allocation, so a command can be sent
 * again (EVAL after NOSCRIPT) without the caller's strings.
 */
struct packed_argv {
    int argc;
    const char **argv;
    size_t *len;
    char *mem;
};

struct enqueue_op {
    struct queue *q;
    queue_enqueue_cb cb;
    void *data;
    uint64_t start_ns;
    bool fell_back;          /* already retried with EVAL */
    struct packed_argv args; /* args 0 and 1 are EVALSHA sha / EVAL script */
};

struct reference_op {
    queue_done_cb cb;
    void *data;
};

/* ---- Keys and argument packing ---------------------------------------- */

static int append_key(struct buf *b, const char *prefix, const char *kind, const char *suffix)
{
    if (suffix != NULL)
        return buf_printf(b, "{%s}:%s:%s", prefix, kind, suffix);
    return buf_printf(b, "{%s}:%s", prefix, kind);
}

char *queue_key(const struct config *cfg, const char *kind, const char *suffix)
{
    size_t n = strlen(cfg->prefix) + strlen(kind) + (suffix != NULL ? strlen(suffix) : 0) + 8;
    struct buf b;

    /* The cap is the exact size, so the append cannot fail. */
    buf_init(&b, n);
    if (append_key(&b, cfg->prefix, kind, suffix) != 0)
        abort();
    return buf_take(&b);
}

/*
 * Appends one argument and its terminating NUL (the separator in the pack).
 * NULL is stored as "": reference values borrow absent activity fields.
 */
static int arg_str(struct buf *b, const char *s)
{
    if (s == NULL)
        s = "";
    return buf_append(b, s, strlen(s) + 1);
}

static int arg_u64(struct buf *b, uint64_t v)
{
    int rc = buf_printf(b, "%" PRIu64, v);
    return rc != 0 ? rc : buf_append(b, "", 1);
}

/* Turns "a\0b\0c\0" into argv, after `skip` slots left for the caller. */
static void pack_finish(struct packed_argv *p, struct buf *b, int skip)
{
    size_t n = 0;
    char *s;

    for (size_t i = 0; i < b->len; i++)
        n += b->data[i] == '\0';
    p->argc = skip + (int)n;
    p->argv = xcalloc((size_t)p->argc, sizeof(*p->argv));
    p->len = xcalloc((size_t)p->argc, sizeof(*p->len));
    p->mem = buf_take(b);
    s = p->mem;
    for (int i = skip; i < p->argc; i++) {
        p->argv[i] = s;
        p->len[i] = strlen(s);
        s += p->len[i] + 1;
    }
}

static void pack_free(struct packed_argv *p)
{
    xfree(p->argv);
    xfree(p->len);
    xfree(p->mem);
}

/* ---- Setup on every (re)connect --------------------------------------- */

static bool reply_is_error(const struct redisReply *r, const char *code)
{
    size_t n = strlen(code);
    return r->type == REDIS_REPLY_ERROR && r->len >= n && memcmp(r->str, code, n) == 0;
}

static void check_ready(struct queue *q)
{
    if (q->group_ok && q->script_ok) {
        q->setup_failed_logged = false;
        log_debug("queue: ready (stream %s, group " QUEUE_GROUP ")", q->stream_key);
    }
}

/*
 * A setup command was refused (wrong key type, -LOADING, …): without it the
 * queue is useless, so drop the connection and let the backoff retry.
 */
static void setup_failed(struct queue *q, const char *what, const struct redisReply *r)
{
    metrics_inc(q->metrics, METRICS_C_REDIS_ERRORS);
    if (!q->setup_failed_logged)
        log_error("queue: %s failed: %s", what,
                  r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
    else
        log_debug("queue: %s failed again", what);
    q->setup_failed_logged = true;
    redis_conn_reset(q->conn);
}

static void on_group(int err, struct redisReply *reply, void *data)
{
    struct queue *q = data;

    if (err != 0)
        return; /* connection lost: setup runs again on reconnect */
    /* BUSYGROUP: the group already exists, which is what we want. */
    if (reply->type == REDIS_REPLY_ERROR && !reply_is_error(reply, "BUSYGROUP")) {
        setup_failed(q, "XGROUP CREATE", reply);
        return;
    }
    q->group_ok = true;
    check_ready(q);
}

static void on_script(int err, struct redisReply *reply, void *data)
{
    struct queue *q = data;

    if (err != 0)
        return;
    if (reply->type != REDIS_REPLY_STRING || reply->len != sizeof(q->sha) - 1) {
        setup_failed(q, "SCRIPT LOAD", reply);
        return;
    }
    memcpy(q->sha, reply->str, sizeof(q->sha) - 1);
    q->sha[sizeof(q->sha) - 1] = '\0';
    q->script_ok = true;
    check_ready(q);
}

/*
 * The group starts at 0, not $: entries XADDed while no group existed (for
 * example by an older process before the group was deleted) must still be
 * delivered. On an existing group this is a BUSYGROUP no-op.
 */
static void setup_send(struct queue *q)
{
    const char *group[] = {"XGROUP", "CREATE", q->stream_key, QUEUE_GROUP, "0", "MKSTREAM"};
    const char *script[] = {"SCRIPT", "LOAD", enqueue_lua};
    int rc;

    rc = redis_conn_command(q->conn, 0, on_group, q, (int)ARRAY_SIZE(group), group, NULL);
    if (rc == 0)
        rc = redis_conn_command(q->conn, 0, on_script, q, (int)ARRAY_SIZE(script), script, NULL);
    if (rc != 0)
        log_debug("queue: setup not sent: %s", dg_strerror(rc));
}

/*
 * Every (re)connect reaches an empty or restarted Redis as far as we know:
 * forget what the last connection set up and do it again.
 */
static void on_conn_state(struct redis_conn *c, bool up, void *data)
{
    struct queue *q = data;

    q->group_ok = false;
    q->script_ok = false;
    if (up)
        setup_send(q);
}

/* ---- Enqueue ---------------------------------------------------------- */

/*
 * Ends an enqueue exactly once: metrics (latency only for answered calls, so
 * timeouts do not skew the histogram), the caller's callback, then the op.
 */
static void enqueue_finish(struct enqueue_op *op, int err, const char *id, bool duplicate)
{
    struct queue *q = op->q;

    if (err == 0) {
        metrics_observe(q->metrics, METRICS_H_ENQUEUE, clock_mono_ns() - op->start_ns);
        metrics_inc(q->metrics, duplicate ? METRICS_C_JOBS_DUPLICATE : METRICS_C_JOBS_ENQUEUED);
    }
    op->cb(err, err == 0 ? id : NULL, duplicate, op->data);
    pack_free(&op->args);
    xfree(op);
}

static int enqueue_send(struct enqueue_op *op);

/* Reply {0|1, id} of the script; anything else is a protocol error. */
static void on_enqueue(int err, struct redisReply *reply, void *data)
{
    struct enqueue_op *op = data;
    struct redisReply *flag, *id;

    if (err != 0) {
        enqueue_finish(op, err, NULL, false);
        return;
    }
    /* The script cache is empty after a Redis restart or SCRIPT FLUSH. */
    if (reply_is_error(reply, "NOSCRIPT") && !op->fell_back) {
        op->fell_back = true;
        op->args.argv[0] = "EVAL";
        op->args.len[0] = strlen("EVAL");
        op->args.argv[1] = enqueue_lua;
        op->args.len[1] = sizeof(enqueue_lua) - 1;
        err = enqueue_send(op);
        if (err != 0)
            enqueue_finish(op, err, NULL, false);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        metrics_inc(op->q->metrics, METRICS_C_REDIS_ERRORS);
        log_warn("queue: enqueue failed: %s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        enqueue_finish(op, DG_ERR_PROTOCOL, NULL, false);
        return;
    }
    flag = reply->element[0];
    id = reply->element[1];
    enqueue_finish(op, 0, id->str, flag->integer == 1);
}

static int enqueue_send(struct enqueue_op *op)
{
    return redis_conn_command(op->q->conn, 0, on_enqueue, op, op->args.argc, op->args.argv,
                              op->args.len);
}

/* Script arguments from "4" (numkeys) on; EVALSHA and the sha come later. */
static int enqueue_pack(const struct queue *q, const struct queue_job *job, struct buf *b)
{
    const struct config *cfg = q->cfg;
    int rc = 0;

    rc |= arg_str(b, "4");
    rc |= append_key(b, cfg->prefix, "conv", job->conv_key) | buf_append(b, "", 1);
    rc |= buf_printf(b, "{%s}:dedup:%s:%s", cfg->prefix, job->conv_key, job->activity_id);
    rc |= buf_append(b, "", 1);
    rc |= append_key(b, cfg->prefix, "req", job->request_id) | buf_append(b, "", 1);
    rc |= arg_str(b, q->stream_key);
    rc |= arg_str(b, job->request_id);
    rc |= arg_u64(b, cfg->dedup_ttl_s);
    rc |= arg_u64(b, cfg->request_ttl_s);
    rc |= arg_str(b, job->mode);
    rc |= arg_str(b, job->audience);
    rc |= arg_str(b, job->test_email);
    rc |= arg_str(b, job->conv_key);
    rc |= arg_str(b, job->activity_id);
    rc |= arg_u64(b, job->created_ms);
    rc |= arg_u64(b, job->n_ref);
    for (size_t i = 0; i < job->n_ref; i++)
        rc |= arg_str(b, job->ref_fields[i]) | arg_str(b, job->ref_values[i]);
    /* All our errors are negative codes; any failure here is the cap. */
    return rc != 0 ? DG_ERR_TOO_LARGE : 0;
}

/* Submission-time checks, so a bad job never costs a round trip. */
static bool job_valid(const struct queue_job *job)
{
    if (job->request_id == NULL || job->conv_key == NULL || job->activity_id == NULL ||
        job->audience == NULL || job->mode == NULL)
        return false;
    if (job->n_ref > QUEUE_MAX_REF_FIELDS)
        return false;
    return job->n_ref == 0 || (job->ref_fields != NULL && job->ref_values != NULL);
}

int queue_enqueue(struct queue *q, const struct queue_job *job, queue_enqueue_cb cb, void *data)
{
    struct enqueue_op *op = NULL;
    struct buf b;
    int rc;

    if (q->stopping)
        return DG_ERR_CLOSED;
    if (!queue_ready(q))
        return DG_ERR_UNAVAILABLE; /* at once, so the webhook can answer 503 */
    if (!job_valid(job))
        return DG_ERR_INVALID;
    buf_init(&b, QUEUE_MAX_ARGS_BYTES);
    rc = enqueue_pack(q, job, &b);
    if (rc != 0)
        goto out;
    op = xcalloc(1, sizeof(*op));
    op->q = q;
    op->cb = cb;
    op->data = data;
    op->start_ns = clock_mono_ns();
    pack_finish(&op->args, &b, 2);
    op->args.argv[0] = "EVALSHA";
    op->args.argv[1] = q->sha;
    op->args.len[0] = strlen("EVALSHA");
    op->args.len[1] = strlen(q->sha);
    rc = enqueue_send(op);
    if (rc != 0) {
        pack_free(&op->args);
        xfree(op);
    }
out:
    buf_free(&b);
    return rc;
}

/* ---- Conversation reference ------------------------------------------- */

/* HSET answers the number of new fields; anything else is unexpected. */
static void on_reference(int err, struct redisReply *reply, void *data)
{
    struct reference_op *op = data;

    if (err == 0 && reply->type != REDIS_REPLY_INTEGER) {
        log_warn("queue: reference not stored: %s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        err = DG_ERR_PROTOCOL;
    }
    op->cb(err, op->data);
    xfree(op);
}

int queue_store_reference(struct queue *q, const char *conv_key, const char *const *fields,
                          const char *const *values, size_t n, queue_done_cb cb, void *data)
{
    struct packed_argv args = {0};
    struct reference_op *op;
    struct buf b;
    int rc = 0;

    if (q->stopping)
        return DG_ERR_CLOSED;
    if (!redis_conn_ready(q->conn))
        return DG_ERR_UNAVAILABLE;
    if (n == 0 || n > QUEUE_MAX_REF_FIELDS)
        return DG_ERR_INVALID;
    buf_init(&b, QUEUE_MAX_ARGS_BYTES);
    rc |= arg_str(&b, "HSET");
    rc |= append_key(&b, q->cfg->prefix, "conv", conv_key) | buf_append(&b, "", 1);
    for (size_t i = 0; i < n; i++)
        rc |= arg_str(&b, fields[i]) | arg_str(&b, values[i]);
    if (rc != 0) {
        buf_free(&b);
        return DG_ERR_TOO_LARGE;
    }
    pack_finish(&args, &b, 0);
    op = xmalloc(sizeof(*op));
    op->cb = cb;
    op->data = data;
    /* hiredis copies argv into its buffer, so the pack can go right away. */
    rc = redis_conn_command(q->conn, 0, on_reference, op, args.argc, args.argv, args.len);
    if (rc != 0)
        xfree(op);
    pack_free(&args);
    buf_free(&b);
    return rc;
}

/* ---- Lifecycle -------------------------------------------------------- */

struct queue *queue_create(uv_loop_t *loop, const struct config *cfg, struct metrics *metrics)
{
    struct queue *q = xcalloc(1, sizeof(*q));

    q->loop = loop;
    q->cfg = cfg;
    q->metrics = metrics;
    q->stream_key = queue_key(cfg, "requests", NULL);
    q->conn = redis_conn_create(loop, cfg, "queue", metrics);
    q->conns_open = 1;
    redis_conn_set_state_cb(q->conn, on_conn_state, q);
    return q;
}

void queue_start(struct queue *q)
{
    redis_conn_start(q->conn);
}

bool queue_ready(const struct queue *q)
{
    return !q->stopping && redis_conn_ready(q->conn) && q->group_ok && q->script_ok;
}

/* The queue is stopped when its last connection is (one today, two with the worker). */
static void on_conn_stopped(struct redis_conn *c, void *data)
{
    struct queue *q = data;

    if (--q->conns_open == 0 && q->stopped_cb != NULL)
        q->stopped_cb(q, q->stopped_data); /* may free q */
}

void queue_stop(struct queue *q, queue_stopped_cb cb, void *data)
{
    if (q->stopping)
        return;
    q->stopping = true;
    q->stopped_cb = cb;
    q->stopped_data = data;
    redis_conn_stop(q->conn, on_conn_stopped, q);
}

void queue_free(struct queue *q)
{
    if (q == NULL)
        return;
    assert(q->conns_open == 0);
    redis_conn_free(q->conn);
    xfree(q->stream_key);
    xfree(q);
}
