/*
 * queue.c: the job queue on Redis streams (see queue.h and SPEC §5).
 *
 * Today it owns one command connection (enqueue, references, setup). The
 * worker side will add a second struct redis_conn for the blocking
 * XREADGROUP (replies are FIFO, so a blocked read must not sit in front of
 * XADD/XACK) plus XACK / XAUTOCLAIM / dead-letter commands on the command
 * connection; stop already counts connections so that is an addition, not a
 * reshaping.
 *
 * Writes are coalesced per loop iteration. queue_enqueue and
 * queue_store_reference only pack an entry into the pending batch; a
 * uv_prepare handle sends each pending batch as ONE script call right before
 * the loop polls, and the script handles the entries one after the other.
 * Measured (bench/RESULTS.md): Redis CPU per job falls by roughly a fifth
 * (the per-call part of EVALSHA; the rest is per redis.call and argument,
 * so it stays), and digestd formats, parses and times one command per batch
 * instead of one per job. It adds no latency: the connection only appends a
 * command to its output buffer and writes what one loop iteration queued in
 * that iteration's check phase (redis_wire.h), so a command sent from this
 * prepare phase and one sent straight from a read callback of the same
 * iteration leave in the same write. Prepare,
 * unlike check, also catches entries submitted from timer and close
 * callbacks before the loop blocks.
 */
#include "store/queue.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/dec.h"
#include "core/hash.h"
#include "config.h"
#include "core/log.h"
#include "metrics.h"
#include "store/group.h"
#include "store/history.h"
#include "store/keys.h"
#include "store/redis.h"
#include "store/resp.h"
#include "store/script.h"

#define QUEUE_MAX_REF_FIELDS 64            /* conversation reference pairs per call */
#define QUEUE_MAX_ARGS_BYTES (64 * 1024)   /* one job or reference */
#define QUEUE_BATCH_MAX_ENTRIES 128        /* jobs and references per script call */
#define QUEUE_BATCH_MAX_BYTES (256 * 1024) /* arguments per script call */
#define QUEUE_STATS_INTERVAL_MS 5000       /* stream length, pending and lag for /metrics */

/* What the script answers for each entry (the first element of its pair). */
enum {
    FLAG_QUEUED = 0,
    FLAG_DUPLICATE = 1,
    FLAG_REFERENCE = 2,
    FLAG_ACK = 3,
};

/*
 * The batch, atomically, entry by entry in submission order (which is also
 * the order of the stream entries). All keys come in KEYS, under one hash
 * tag, so it also runs on a Cluster. KEYS: 1 the stream, 2 this minute's
 * counts (history.h); then per entry its conversation reference, and for a
 * job its dedup key and audit record.
 * ARGV: 1 dedup TTL s, 2 request TTL s; then per entry its kind ('j' job,
 * 'r' reference, 'a' acknowledgment id), n reference pairs and the pairs; a
 * job continues with request_id, mode, audience, test_email, conv,
 * activity_id, created_ms; an acknowledgment (n = 0, its one key the audit
 * record instead of a reference) with the card's id.
 * A new job also becomes its conversation's last_request_id (the `status`
 * command's "latest"); its record keeps its stream entry's id (stream_id),
 * so that one request's state is found in O(1) (digestctl show). Mode
 * 'sync' records the request as processing and adds nothing to the stream,
 * since the webhook serves it in place. The minute counts the batch's new
 * jobs as enqueued or sync, one HINCRBY for all of them.
 * Every entry refreshes the reference, duplicates included; a duplicate
 * writes nothing else. A new job writes its reference and last_request_id in
 * one HSET, right after its dedup key: Redis's cost here is per redis.call
 * more than per field (bench/RESULTS.md). 'J' and 'R' mark an entry whose reference a later
 * entry of the batch overwrites field for field (see supersede): its HSET
 * would change nothing that survives the script, so it is skipped. Two
 * entries of one batch for the same activity are one job and one duplicate:
 * the second SET NX sees the first.
 * An acknowledgment stores ack_activity_id on a record that exists (every
 * record has a status, so HGET status tells; an expired one is never
 * recreated) and answers its status in the same step, so the webhook learns
 * whether the job ended before the card's id was known.
 * Returns a flat array, {flag, id} per entry: {0, id} new job, {1, first
 * id} duplicate, {2, ""} reference stored, {3, status} acknowledgment ("" when
 * there is no record, or it has no status).
 */
static const char enqueue_lua[] = LUA_MINUTE_ADD
    "local out, k, a, nargs = {}, 3, 3, #ARGV\n"
    "local added, synced = 0, 0\n"
    "while a <= nargs do\n"
    "  local kind, n = ARGV[a], tonumber(ARGV[a + 1])\n"
    "  local p0, p1 = a + 2, a + 1 + 2 * n\n"
    "  local ref = n > 0 and (kind == 'j' or kind == 'r')\n"
    "  if ref and kind == 'r' then\n"
    "    redis.call('HSET', KEYS[k], unpack(ARGV, p0, p1))\n"
    "  end\n"
    "  a = a + 2 + 2 * n\n"
    "  if kind == 'r' or kind == 'R' then\n"
    "    out[#out + 1] = 2\n"
    "    out[#out + 1] = ''\n"
    "    k = k + 1\n"
    "  elseif kind == 'a' then\n"
    "    local st = redis.call('HGET', KEYS[k], 'status')\n"
    "    if st then\n"
    "      redis.call('HSET', KEYS[k], 'ack_activity_id', ARGV[a])\n"
    "    end\n"
    "    out[#out + 1] = 3\n"
    "    out[#out + 1] = st or ''\n"
    "    a = a + 1\n"
    "    k = k + 1\n"
    "  else\n"
    "    local id = ARGV[a]\n"
    "    if redis.call('SET', KEYS[k + 1], id, 'NX', 'EX', ARGV[1]) then\n"
    "      if ref then\n"
    "        redis.call('HSET', KEYS[k], 'last_request_id', id, unpack(ARGV, p0, p1))\n"
    "      else\n"
    "        redis.call('HSET', KEYS[k], 'last_request_id', id)\n"
    "      end\n"
    "      local st, f, v = " LUA_PROCESSING ", 'started_ms', ARGV[a + 6]\n"
    "      if ARGV[a + 1] == 'async' then\n"
    "        st, f = " LUA_QUEUED ", 'stream_id'\n"
    "        v = redis.call('XADD', KEYS[1], '*', 'request_id', id, 'activity_id', ARGV[a + 5],\n"
    "          'audience', ARGV[a + 2], 'test_email', ARGV[a + 3], 'conv', ARGV[a + 4],\n"
    "          'created_ms', ARGV[a + 6])\n"
    "        added = added + 1\n"
    "      else\n"
    "        synced = synced + 1\n"
    "      end\n"
    "      redis.call('HSET', KEYS[k + 2], 'status', st, 'mode', ARGV[a + 1],\n"
    "        'audience', ARGV[a + 2], 'test_email', ARGV[a + 3], 'conv', ARGV[a + 4],\n"
    "        'activity_id', ARGV[a + 5], 'created_ms', ARGV[a + 6], 'attempts', '0', f, v)\n"
    "      redis.call('EXPIRE', KEYS[k + 2], ARGV[2])\n"
    "      out[#out + 1] = 0\n"
    "      out[#out + 1] = id\n"
    "    else\n"
    "      if ref then redis.call('HSET', KEYS[k], unpack(ARGV, p0, p1)) end\n"
    "      out[#out + 1] = 1\n"
    "      out[#out + 1] = redis.call('GET', KEYS[k + 1])\n"
    "    end\n"
    "    a = a + 7\n"
    "    k = k + 3\n"
    "  end\n"
    "end\n"
    "if added > 0 then minute_add(KEYS[2], '" HISTORY_F_ENQUEUED "', added) end\n"
    "if synced > 0 then minute_add(KEYS[2], '" HISTORY_F_SYNC "', synced) end\n"
    "return out\n";

const struct store_script queue_enqueue_script = {"queue_enqueue", enqueue_lua,
                                                  sizeof(enqueue_lua) - 1};

/* One caller's entry in a batch: a job (enqueue_cb), a reference (done_cb) or an ack (ack_cb). */
struct entry {
    queue_enqueue_cb enqueue_cb;
    queue_done_cb done_cb;
    queue_ack_cb ack_cb;
    void *data;
    uint64_t start_ns;
    uint64_t conv_hash; /* of the conversation key, to compare entries fast */
    size_t conv_off;    /* the conversation key in batch->keys */
    size_t kind_off;    /* the kind letter in batch->args; "n", pairs follow */
};

/*
 * Entries sent as one script call. keys and args hold the arguments one
 * after the other, each NUL-terminated, so the batch can be sent again
 * (EVAL after NOSCRIPT) without the callers' strings.
 */
struct batch {
    struct batch *next; /* pending list */
    struct queue *q;
    unsigned n;       /* entries */
    int nkeys, nargs; /* arguments in keys / args */
    bool fell_back;   /* sent again with EVAL */
    bool by_sha;      /* the send in flight is an EVALSHA */
    struct buf keys;
    struct buf args;
    struct entry entries[QUEUE_BATCH_MAX_ENTRIES];
};

/* The arguments of one entry, packed before it is added to a batch. */
struct packed {
    struct buf keys;
    struct buf args;
    int nkeys, nargs;
};

struct queue {
    uv_loop_t *loop;
    const struct config *cfg;
    struct metrics *metrics;
    struct redis_conn *conn; /* commands; the worker's blocking reads have their own */
    uv_prepare_t flush;      /* sends the pending batches before the loop polls */
    uv_timer_t stats;        /* samples stream length, pending and lag for /metrics */
    struct batch *pending, *pending_tail;
    struct batch *spare;    /* a finished batch, kept for its buffers */
    struct packed pk;       /* scratch for the entry being added */
    struct buf resp;        /* scratch: a batch's command in RESP (copied when sent) */
    unsigned sha_in_flight; /* batches sent with EVALSHA and not answered */
    bool noscript_hold;     /* see on_batch */
    char *stream_key;       /* {P}:requests */
    char sha[41];           /* of enqueue_lua, from SCRIPT LOAD */
    /* Requests served while Redis was away, for their minutes once it is back. */
    struct history_ledger offline;
    bool group_ok;  /* XGROUP CREATE answered on this connection */
    bool script_ok; /* SCRIPT LOAD answered on this connection */
    bool setup_failed_logged;
    bool stopping;
    unsigned parts_open; /* connections and handles not yet closed */
    queue_stopped_cb stopped_cb;
    void *stopped_data;
};

/* ---- Keys and argument packing ---------------------------------------- */

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
    char s[DEC_U64_SIZE];

    dec_u64(s, v);
    return arg_str(b, s);
}

/* A key built by keys.h, ended as one packed argument. */
static int arg_end(struct buf *b, int key_rc)
{
    return key_rc | buf_append(b, "", 1);
}

static void packed_reset(struct packed *p)
{
    buf_reset(&p->keys);
    buf_reset(&p->args);
    p->nkeys = 0;
    p->nargs = 0;
}

/* Kind, count and pairs: the part every entry starts with. */
static int pack_reference(struct queue *q, const char *kind, const char *conv_key,
                          const char *const *fields, const char *const *values, size_t n)
{
    struct packed *p = &q->pk;
    int rc;

    rc = arg_end(&p->keys, keys_append_conv(&p->keys, q->cfg->prefix, conv_key));
    rc |= arg_str(&p->args, kind);
    rc |= arg_u64(&p->args, n);
    for (size_t i = 0; i < n; i++)
        rc |= arg_str(&p->args, fields[i]) | arg_str(&p->args, values[i]);
    p->nkeys += 1;
    p->nargs += 2 + 2 * (int)n;
    return rc;
}

/* A job's entry into q->pk (layout: see enqueue_lua). */
static int pack_job(struct queue *q, const struct queue_job *job)
{
    const char *prefix = q->cfg->prefix;
    struct packed *p = &q->pk;
    int rc;

    rc = pack_reference(q, "j", job->conv_key, job->ref_fields, job->ref_values, job->n_ref);
    rc |= arg_end(&p->keys, keys_append_dedup(&p->keys, prefix, job->conv_key, job->activity_id));
    rc |= arg_end(&p->keys, keys_append_request(&p->keys, prefix, job->request_id));
    rc |= arg_str(&p->args, job->request_id);
    rc |= arg_str(&p->args, job->mode);
    rc |= arg_str(&p->args, job->audience);
    rc |= arg_str(&p->args, job->test_email);
    rc |= arg_str(&p->args, job->conv_key);
    rc |= arg_str(&p->args, job->activity_id);
    rc |= arg_u64(&p->args, job->created_ms);
    p->nkeys += 2;
    p->nargs += 7;
    return rc;
}

/* An acknowledgment's entry into q->pk: the record is its one key (layout: see enqueue_lua). */
static int pack_ack(struct queue *q, const char *request_id, const char *ack_activity_id)
{
    struct packed *p = &q->pk;
    int rc;

    rc = arg_end(&p->keys, keys_append_request(&p->keys, q->cfg->prefix, request_id));
    rc |= arg_str(&p->args, "a");
    rc |= arg_str(&p->args, "0");
    rc |= arg_str(&p->args, ack_activity_id);
    p->nkeys += 1;
    p->nargs += 3;
    return rc;
}

/* Steps over one packed argument. */
static const char *next_arg(const char *s)
{
    return s + strlen(s) + 1;
}

/* Two packed "n\0f1\0v1\0…" runs name the same fields in the same order. */
static bool same_fields(const char *a, const char *b)
{
    unsigned long n = strtoul(a, NULL, 10);

    if (strcmp(a, b) != 0)
        return false;
    a = next_arg(a);
    b = next_arg(b);
    for (unsigned long i = 0; i < n; i++) {
        if (strcmp(a, b) != 0)
            return false;
        a = next_arg(next_arg(a));
        b = next_arg(next_arg(b));
    }
    return true;
}

/* ---- Setup on every (re)connect --------------------------------------- */

static bool reply_is_error(const struct redisReply *r, const char *code)
{
    size_t n = strlen(code);
    return r->type == REDIS_REPLY_ERROR && r->len >= n && memcmp(r->str, code, n) == 0;
}

static void on_offline_flushed(int err, void *data)
{
    if (err)
        log_debug("queue: offline counts not added yet: %s", dg_strerror(err));
}

/* What was served while Redis was away goes into its minutes. */
static void flush_offline(struct queue *q)
{
    if (q->offline.len > 0 &&
        history_flush(q->conn, q->cfg->prefix, &q->offline, on_offline_flushed, q) != 0)
        log_debug("queue: offline counts kept for the next connection");
}

static void check_ready(struct queue *q)
{
    if (q->group_ok && q->script_ok) {
        q->setup_failed_logged = false;
        log_debug("queue: ready (stream %s, group " KEYS_GROUP ")", q->stream_key);
        flush_offline(q);
    }
}

/*
 * A setup command was refused (wrong key type, -LOADING, …): without it the
 * queue is useless, so drop the connection and let the backoff retry.
 */
static void setup_failed(struct queue *q, const char *what, const char *why)
{
    metrics_inc(q->metrics, METRICS_C_REDIS_ERRORS);
    if (!q->setup_failed_logged)
        log_error("queue: %s failed: %s", what, why);
    else
        log_debug("queue: %s failed again", what);
    q->setup_failed_logged = true;
    redis_conn_reset(q->conn);
}

static void on_group(int err, const char *refusal, void *data)
{
    struct queue *q = data;

    if (err == DG_ERR_PROTOCOL) {
        setup_failed(q, "XGROUP CREATE", refusal);
        return;
    }
    if (err != 0)
        return; /* connection lost: setup runs again on reconnect */
    q->group_ok = true;
    check_ready(q);
}

static void on_script(int err, struct redisReply *reply, void *data)
{
    struct queue *q = data;

    if (err != 0)
        return;
    if (reply->type != REDIS_REPLY_STRING || reply->len != sizeof(q->sha) - 1) {
        setup_failed(q, "SCRIPT LOAD", reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        return;
    }
    memcpy(q->sha, reply->str, sizeof(q->sha) - 1);
    q->sha[sizeof(q->sha) - 1] = '\0';
    q->script_ok = true;
    check_ready(q);
}

/* The group (a BUSYGROUP no-op when it exists) and the script, on every connect. */
static void setup_send(struct queue *q)
{
    const char *script[] = {"SCRIPT", "LOAD", enqueue_lua};
    int rc;

    rc = group_create(q->conn, q->cfg->prefix, on_group, q);
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

/* ---- Batches ---------------------------------------------------------- */

static void on_batch(int err, struct redisReply *reply, void *data);
static void on_flush(uv_prepare_t *h);

/* A fresh batch (the spare one if any) holding the stream key and the TTLs. */
static struct batch *batch_new(struct queue *q)
{
    struct batch *b = q->spare;
    int rc;

    if (b != NULL) {
        q->spare = NULL;
        buf_reset(&b->keys);
        buf_reset(&b->args);
    } else {
        b = xmalloc(sizeof(*b));
        buf_init(&b->keys, QUEUE_BATCH_MAX_BYTES);
        buf_init(&b->args, QUEUE_BATCH_MAX_BYTES);
    }
    b->next = NULL;
    b->q = q;
    b->n = 0;
    b->fell_back = false;
    b->by_sha = false;
    rc = arg_str(&b->keys, q->stream_key);
    rc |= arg_end(&b->keys,
                  keys_append_minute(&b->keys, q->cfg->prefix, history_minute(clock_wall_ms())));
    rc |= arg_u64(&b->args, q->cfg->dedup_ttl_s);
    rc |= arg_u64(&b->args, q->cfg->request_ttl_s);
    if (rc != 0)
        abort(); /* a few bytes into an empty 256 KiB buffer */
    b->nkeys = 2;
    b->nargs = 2;
    return b;
}

static void batch_free(struct batch *b)
{
    buf_free(&b->keys);
    buf_free(&b->args);
    xfree(b);
}

/* Keeps one finished batch, so most new batches reuse grown buffers. */
static void batch_recycle(struct queue *q, struct batch *b)
{
    if (q->spare == NULL && !q->stopping)
        q->spare = b;
    else
        batch_free(b);
}

/*
 * The new entry e writes the same fields of the same conversation reference
 * as the nearest earlier entry for that conversation, if any: that one's
 * HSET is dead inside the atomic script (nothing reads the hash between the
 * two), so its kind letter is raised to 'J'/'R' and the script skips it.
 * Earlier ones were checked when their successor was added. When one
 * conversation sends several activities within a loop iteration, this skips
 * the command with the most arguments of all but the last job; it never
 * changes what Redis holds after the script.
 */
static void supersede(struct batch *b, const struct entry *e)
{
    const char *key = b->keys.data + e->conv_off;
    const char *pairs = b->args.data + e->kind_off + 2;

    /* An acknowledgment's key is a record, and it writes no reference. */
    if (e->ack_cb != NULL)
        return;
    for (unsigned i = b->n - 1; i-- > 0;) {
        struct entry *p = &b->entries[i];
        char *kind = b->args.data + p->kind_off;

        if (*kind == 'a')
            continue;
        if (p->conv_hash != e->conv_hash || strcmp(b->keys.data + p->conv_off, key) != 0)
            continue;
        if (same_fields(kind + 2, pairs))
            *kind = *kind == 'j' ? 'J' : 'R';
        return;
    }
}

/*
 * Moves q->pk into the newest pending batch, or into a new one when that is
 * full, and returns the entry for the caller to fill in.
 */
static struct entry *batch_add(struct queue *q)
{
    struct batch *b = q->pending_tail;
    size_t need = q->pk.keys.len + q->pk.args.len;
    struct entry *e;

    if (b == NULL || b->n == QUEUE_BATCH_MAX_ENTRIES ||
        b->keys.len + b->args.len + need > QUEUE_BATCH_MAX_BYTES) {
        b = batch_new(q);
        if (q->pending_tail != NULL)
            q->pending_tail->next = b;
        else
            q->pending = b;
        q->pending_tail = b;
        uv_prepare_start(&q->flush, on_flush);
    }
    e = &b->entries[b->n++];
    memset(e, 0, sizeof(*e));
    /* Every entry starts with its conversation key and its kind. */
    e->conv_off = b->keys.len;
    e->kind_off = b->args.len;
    e->conv_hash = hash_fnv1a(q->pk.keys.data);
    /* need <= QUEUE_MAX_ARGS_BYTES, far below the batch cap: cannot fail. */
    if (buf_append(&b->keys, q->pk.keys.data, q->pk.keys.len) != 0 ||
        buf_append(&b->args, q->pk.args.data, q->pk.args.len) != 0)
        abort();
    b->nkeys += q->pk.nkeys;
    b->nargs += q->pk.nargs;
    supersede(b, e);
    e->start_ns = clock_mono_ns();
    return e;
}

/*
 * Ends every entry of a batch exactly once, in submission order: metrics
 * (latency only for answered jobs, so timeouts do not skew the histogram),
 * then each caller's callback. reply is the script's checked answer when err
 * is 0. Callbacks may enqueue (into a new batch) or stop the queue.
 */
static void batch_finish(struct batch *b, int err, const struct redisReply *reply)
{
    struct queue *q = b->q;
    uint64_t now = err == 0 ? clock_mono_ns() : 0;

    for (unsigned i = 0; i < b->n; i++) {
        struct entry *e = &b->entries[i];
        bool dup;

        if (e->done_cb != NULL) {
            e->done_cb(err, e->data);
            continue;
        }
        if (e->ack_cb != NULL) {
            enum request_status st = REQUEST_STATUS_QUEUED;
            /* "" is no record (or one without a status): not found. */
            bool found = err == 0 && request_status_parse(reply->element[2 * i + 1]->str, &st) == 0;

            e->ack_cb(err, found, st, e->data);
            continue;
        }
        if (err != 0) {
            e->enqueue_cb(err, NULL, false, e->data);
            continue;
        }
        dup = reply->element[2 * i]->integer == FLAG_DUPLICATE;
        metrics_observe(q->metrics, METRICS_H_ENQUEUE, now - e->start_ns);
        metrics_inc(q->metrics, dup ? METRICS_C_JOBS_DUPLICATE : METRICS_C_JOBS_ENQUEUED);
        e->enqueue_cb(0, reply->element[2 * i + 1]->str, dup, e->data);
    }
    batch_recycle(q, b);
}

/* The n NUL-terminated arguments packed in b, as bulk strings. */
static void resp_packed(struct buf *o, const struct buf *b, int n, int *rc)
{
    const char *s = b->data;

    for (int i = 0; i < n; i++) {
        size_t len = strlen(s);

        resp_put_bulk(o, s, len, rc);
        s += len + 1;
    }
}

/*
 * EVALSHA sha, or EVAL script after a NOSCRIPT; then numkeys, KEYS, ARGV.
 * Written in RESP here: hiredis would format each argument through
 * sdscatfmt, which cost more than the rest of the batch's packing.
 */
static int batch_send(struct batch *b)
{
    struct queue *q = b->q;
    struct buf *o = &q->resp;
    int rc = 0;

    buf_reset(o);
    if (buf_reserve(o, b->keys.len + b->args.len + 16 * (size_t)(3 + b->nkeys + b->nargs) +
                           (b->fell_back ? sizeof(enqueue_lua) : 64)) != 0)
        return DG_ERR_TOO_LARGE; /* cannot happen: the batch is capped far below */
    resp_put_count(o, '*', (size_t)(3 + b->nkeys + b->nargs), &rc);
    if (b->fell_back) {
        resp_put_bulk(o, "EVAL", 4, &rc);
        resp_put_bulk(o, enqueue_lua, sizeof(enqueue_lua) - 1, &rc);
    } else {
        resp_put_bulk(o, "EVALSHA", 7, &rc);
        resp_put_bulk(o, q->sha, strlen(q->sha), &rc);
    }
    {
        char numkeys[16];
        int n = snprintf(numkeys, sizeof(numkeys), "%d", b->nkeys);

        resp_put_bulk(o, numkeys, (size_t)n, &rc);
    }
    resp_packed(o, &b->keys, b->nkeys, &rc);
    resp_packed(o, &b->args, b->nargs, &rc);
    if (rc != 0)
        return DG_ERR_TOO_LARGE;
    /* The connection copies the text into its output buffer: the scratch is free again. */
    rc = redis_conn_command_resp(q->conn, 0, on_batch, b, o->data, o->len);
    if (rc == 0 && !b->fell_back) {
        b->by_sha = true;
        q->sha_in_flight++;
    }
    return rc;
}

/* The script answers {flag, id} per entry, flag 2 exactly for references, 3 for acks. */
static bool reply_fits(const struct batch *b, const struct redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 * (size_t)b->n)
        return false;
    for (unsigned i = 0; i < b->n; i++) {
        const struct redisReply *flag = r->element[2 * i];
        bool is_ref = b->entries[i].done_cb != NULL;
        bool is_ack = b->entries[i].ack_cb != NULL;

        if (flag->type != REDIS_REPLY_INTEGER || r->element[2 * i + 1]->type != REDIS_REPLY_STRING)
            return false;
        if (is_ref != (flag->integer == FLAG_REFERENCE) || is_ack != (flag->integer == FLAG_ACK))
            return false;
    }
    return true;
}

/*
 * After a NOSCRIPT (SCRIPT FLUSH, or a failover to a replica that never
 * loaded it), the batch goes again with EVAL, which also reloads the script.
 * Batches sent with EVALSHA behind it may fail the same way and be resent in
 * turn; a new batch sent meanwhile would find the script loaded and overtake
 * them in the stream. So no new batch leaves until every EVALSHA sent before
 * is answered (noscript_hold; one round trip, and only after a flush).
 */
static void on_batch(int err, struct redisReply *reply, void *data)
{
    struct batch *b = data;
    struct queue *q = b->q;

    if (b->by_sha) {
        b->by_sha = false;
        q->sha_in_flight--;
    }
    if (err == 0 && reply_is_error(reply, "NOSCRIPT") && !b->fell_back) {
        b->fell_back = true;
        q->noscript_hold = true;
        err = batch_send(b);
        if (err == 0)
            return;
    } else if (err == 0 && !reply_fits(b, reply)) {
        metrics_inc(q->metrics, METRICS_C_REDIS_ERRORS);
        log_warn("queue: enqueue of %u entries failed: %s", b->n,
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        err = DG_ERR_PROTOCOL;
    }
    if (q->sha_in_flight == 0)
        q->noscript_hold = false;
    batch_finish(b, err, reply);
}

/* Ends, with err, every batch not sent yet (stop; submission order). */
static void pending_fail(struct queue *q, int err)
{
    struct batch *b = q->pending;

    q->pending = q->pending_tail = NULL;
    while (b != NULL) {
        struct batch *next = b->next;
        batch_finish(b, err, NULL);
        b = next;
    }
}

/*
 * The prepare callback: sends every pending batch. The list is detached
 * first, so callbacks of a batch that fails here enqueue into a new list
 * (sent on the next iteration) instead of extending this walk forever.
 */
static void on_flush(uv_prepare_t *h)
{
    struct queue *q = container_of(h, struct queue, flush);
    struct batch *b = q->pending;

    if (q->noscript_hold)
        return; /* on_batch lifts it; we run again on the next iteration */
    q->pending = q->pending_tail = NULL;
    uv_prepare_stop(h);
    while (b != NULL) {
        struct batch *next = b->next;
        int rc;

        b->next = NULL;
        if (queue_ready(q))
            rc = batch_send(b);
        else
            rc = q->stopping ? DG_ERR_CLOSED : DG_ERR_UNAVAILABLE;
        if (rc != 0)
            batch_finish(b, rc, NULL);
        b = next;
    }
}

/* ---- Enqueue and references ----------------------------------------- */

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

/* What queue_enqueue and queue_store_reference refuse at once. */
static int submit_check(const struct queue *q)
{
    if (q->stopping)
        return DG_ERR_CLOSED;
    if (!queue_ready(q))
        return DG_ERR_UNAVAILABLE; /* at once, so the webhook can answer 503 */
    return 0;
}

/*
 * q->pk holds the packed entry; all our errors are negative codes, so any
 * failure while packing was a cap.
 */
static int packed_check(const struct queue *q, int pack_rc)
{
    if (pack_rc != 0 || q->pk.keys.len + q->pk.args.len > QUEUE_MAX_ARGS_BYTES)
        return DG_ERR_TOO_LARGE;
    return 0;
}

int queue_enqueue(struct queue *q, const struct queue_job *job, queue_enqueue_cb cb, void *data)
{
    struct entry *e;
    int rc;

    rc = submit_check(q);
    if (rc != 0)
        return rc;
    if (!job_valid(job))
        return DG_ERR_INVALID;
    packed_reset(&q->pk);
    rc = packed_check(q, pack_job(q, job));
    if (rc != 0)
        return rc;
    e = batch_add(q);
    e->enqueue_cb = cb;
    e->data = data;
    return 0;
}

int queue_store_reference(struct queue *q, const char *conv_key, const char *const *fields,
                          const char *const *values, size_t n, queue_done_cb cb, void *data)
{
    struct entry *e;
    int rc;

    rc = submit_check(q);
    if (rc != 0)
        return rc;
    if (conv_key == NULL || fields == NULL || values == NULL || n == 0 || n > QUEUE_MAX_REF_FIELDS)
        return DG_ERR_INVALID;
    packed_reset(&q->pk);
    rc = packed_check(q, pack_reference(q, "r", conv_key, fields, values, n));
    if (rc != 0)
        return rc;
    e = batch_add(q);
    e->done_cb = cb;
    e->data = data;
    return 0;
}

int queue_record_ack(struct queue *q, const char *request_id, const char *ack_activity_id,
                     queue_ack_cb cb, void *data)
{
    struct entry *e;
    int rc;

    rc = submit_check(q);
    if (rc != 0)
        return rc;
    if (request_id == NULL || !*request_id || ack_activity_id == NULL || cb == NULL)
        return DG_ERR_INVALID;
    packed_reset(&q->pk);
    rc = packed_check(q, pack_ack(q, request_id, ack_activity_id));
    if (rc != 0)
        return rc;
    e = batch_add(q);
    e->ack_cb = cb;
    e->data = data;
    return 0;
}

/* ---- Lifecycle -------------------------------------------------------- */

struct queue *queue_create(uv_loop_t *loop, const struct config *cfg, struct metrics *metrics)
{
    struct queue *q = xcalloc(1, sizeof(*q));

    q->loop = loop;
    q->cfg = cfg;
    q->metrics = metrics;
    q->stream_key = keys_stream(cfg->prefix);
    buf_init(&q->pk.keys, QUEUE_MAX_ARGS_BYTES);
    buf_init(&q->pk.args, QUEUE_MAX_ARGS_BYTES);
    /* A full batch, its framing, and EVAL's script text. */
    buf_init(&q->resp, 2 * QUEUE_BATCH_MAX_BYTES + 64 * 1024);
    uv_prepare_init(loop, &q->flush);
    uv_timer_init(loop, &q->stats);
    uv_unref((uv_handle_t *)&q->stats); /* sampling alone keeps no loop alive */
    q->conn = redis_conn_create(loop, cfg, "queue", metrics);
    q->parts_open = 3; /* the connection, the flush handle and the stats timer */
    redis_conn_set_state_cb(q->conn, on_conn_state, q);
    return q;
}

/* XINFO GROUPS: "pending" and "lag" (Redis 7; nil when unknown) of our group. */
static void on_groups(int err, redisReply *r, void *data)
{
    struct queue *q = data;
    size_t i, j;

    if (err || q->stopping || r->type != REDIS_REPLY_ARRAY)
        return;
    for (i = 0; i < r->elements; i++) {
        const redisReply *g = r->element[i];
        long long pending = -1, lag = -1;
        bool ours = false;

        if (g->type != REDIS_REPLY_ARRAY)
            continue;
        for (j = 0; j + 1 < g->elements; j += 2) {
            const redisReply *k = g->element[j], *v = g->element[j + 1];
            if (k->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(k->str, "name") == 0)
                ours = v->type == REDIS_REPLY_STRING && strcmp(v->str, KEYS_GROUP) == 0;
            else if (strcmp(k->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
                pending = v->integer;
            else if (strcmp(k->str, "lag") == 0 && v->type == REDIS_REPLY_INTEGER)
                lag = v->integer;
        }
        if (ours) {
            metrics_gauge_set(q->metrics, METRICS_G_STREAM_PENDING, pending);
            metrics_gauge_set(q->metrics, METRICS_G_STREAM_LAG, lag); /* -1: unknown */
        }
    }
}

static void on_xlen(int err, redisReply *r, void *data)
{
    struct queue *q = data;

    if (!err && !q->stopping && r->type == REDIS_REPLY_INTEGER)
        metrics_gauge_set(q->metrics, METRICS_G_STREAM_LENGTH, r->integer);
}

static void on_stats_tick(uv_timer_t *t)
{
    struct queue *q = container_of(t, struct queue, stats);
    const char *groups[] = {"XINFO", "GROUPS", q->stream_key};
    const char *xlen[] = {"XLEN", q->stream_key};

    if (!queue_ready(q))
        return;
    flush_offline(q);
    /* Failures are fine here: the next tick samples again. */
    if (redis_conn_command(q->conn, 0, on_groups, q, 3, groups, NULL) != 0)
        return;
    if (redis_conn_command(q->conn, 0, on_xlen, q, 2, xlen, NULL) != 0)
        return;
}

void queue_start(struct queue *q)
{
    redis_conn_start(q->conn);
    uv_timer_start(&q->stats, on_stats_tick, QUEUE_STATS_INTERVAL_MS, QUEUE_STATS_INTERVAL_MS);
}

bool queue_ready(const struct queue *q)
{
    return !q->stopping && redis_conn_ready(q->conn) && q->group_ok && q->script_ok;
}

void queue_count_offline(struct queue *q, enum history_offline kind)
{
    history_ledger_add(&q->offline, history_minute(clock_wall_ms()), kind, 1);
}

struct redis_conn *queue_conn(struct queue *q)
{
    return q->conn;
}

/* The queue is stopped when its last part is closed. */
static void part_closed(struct queue *q)
{
    if (--q->parts_open == 0 && q->stopped_cb != NULL)
        q->stopped_cb(q, q->stopped_data); /* may free q */
}

static void on_conn_stopped(struct redis_conn *c, void *data)
{
    part_closed(data);
}

static void on_flush_closed(uv_handle_t *h)
{
    part_closed(container_of((uv_prepare_t *)h, struct queue, flush));
}

static void on_stats_closed(uv_handle_t *h)
{
    part_closed(container_of((uv_timer_t *)h, struct queue, stats));
}

/*
 * Sent batches finish with DG_ERR_CLOSED as the connection stops, then the
 * pending ones do: every callback runs once, in submission order.
 */
void queue_stop(struct queue *q, queue_stopped_cb cb, void *data)
{
    if (q->stopping)
        return;
    q->stopping = true;
    q->stopped_cb = cb;
    q->stopped_data = data;
    redis_conn_stop(q->conn, on_conn_stopped, q);
    pending_fail(q, DG_ERR_CLOSED);
    uv_close((uv_handle_t *)&q->flush, on_flush_closed);
    uv_close((uv_handle_t *)&q->stats, on_stats_closed);
}

void queue_free(struct queue *q)
{
    if (q == NULL)
        return;
    assert(q->parts_open == 0 && q->pending == NULL);
    redis_conn_free(q->conn);
    if (q->spare != NULL)
        batch_free(q->spare);
    buf_free(&q->pk.keys);
    buf_free(&q->pk.args);
    buf_free(&q->resp);
    xfree(q->stream_key);
    xfree(q);
}
