/*
 * worker.c: taking jobs (see worker.h). Reading: first this consumer's own
 * pending entries (XREADGROUP … 0, what a previous process of the same name
 * left), then new ones (>), never more than the free slots. Claiming: a
 * timer takes entries idle past WORKER_CLAIM_IDLE_MS from any consumer
 * (XAUTOCLAIM). Leases: a timer resets the idle time of the jobs held here,
 * so claiming only ever finds the jobs of a consumer that went away.
 */
#include "worker.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/backoff.h"
#include "core/buf.h"
#include "core/hash.h"
#include "config.h"
#include "core/log.h"
#include "metrics.h"
#include "store/group.h"
#include "store/keys.h"
#include "store/procs.h"
#include "store/queue.h"
#include "store/redis.h"
#include "retention.h"
#include "worker_internal.h"

#define WORKER_READ_BLOCK_MS 2000 /* XREADGROUP BLOCK: a stop waits at most this */
#define WORKER_READ_RETRY_MS 1000 /* after an error reply (no group yet, say) */
#define WORKER_CLAIM_MAX 100      /* entries per XAUTOCLAIM call */
#define WORKER_RENEW_MIN_MS 100
#define WORKER_INDEX_MIN 64 /* buckets of the stream-id index, at least */

static void read_more(struct worker *w);
static void start_claim(struct worker *w);

static size_t free_slots(const struct worker *w)
{
    size_t cap = w->cfg->worker_concurrency;

    return w->n_jobs < cap ? cap - w->n_jobs : 0;
}

/* FNV-1a is enough: stream ids are short and not chosen by anyone hostile. */
void worker_index_add(struct worker *w, struct job *j)
{
    hash_table_insert(&w->index, &j->index_node, hash_fnv1a(j->f.stream_id));
}

void worker_index_remove(struct worker *w, struct job *j)
{
    hash_table_remove(&w->index, &j->index_node);
}

static struct job *find_job(struct worker *w, const char *stream_id)
{
    struct hash_node *n;

    for (n = hash_table_find(&w->index, hash_fnv1a(stream_id)); n; n = hash_table_find_next(n)) {
        struct job *j = container_of(n, struct job, index_node);

        if (strcmp(j->f.stream_id, stream_id) == 0)
            return j;
    }
    return NULL;
}

static void check_drained(struct worker *w);

/* Left the group, unless entries are still pending under us (group_leave). */
static void on_farewell(int err, bool left, void *data)
{
    struct worker *w = data;

    if (!err && !left)
        log_info("worker: %s keeps its pending entries for another worker", w->consumer);
    w->farewell = FAREWELL_DONE;
    check_drained(w);
}

static bool say_farewell(struct worker *w)
{
    w->farewell = FAREWELL_SENT;
    if (!queue_ready(w->queue) ||
        group_leave(queue_conn(w->queue), w->cfg->prefix, w->consumer, on_farewell, w) != 0) {
        w->farewell = FAREWELL_DONE;
        return false;
    }
    return true;
}

static void check_drained(struct worker *w)
{
    worker_cb cb = w->drained_cb;

    if (w->state == WORKER_RUNNING || !cb || w->n_jobs > 0 || w->reading || w->claiming ||
        w->renewing > 0 || w->farewell == FAREWELL_SENT)
        return;
    if (w->farewell == FAREWELL_NOT_SENT && say_farewell(w))
        return;
    w->drained_cb = NULL;
    cb(w, w->drained_data);
}

void worker_job_finished(struct worker *w)
{
    read_more(w);
    check_drained(w);
}

static bool reply_is_string(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/*
 * One stream entry [id, [field, value, …]] into f (borrowing the reply).
 * false when it is not that shape; *deleted when the entry is gone from the
 * stream (trimmed while pending: its fields read nil).
 */
static bool parse_entry(const redisReply *e, struct job_fields *f, bool *deleted)
{
    const redisReply *kv;
    size_t i;

    memset(f, 0, sizeof(*f));
    *deleted = false;
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !reply_is_string(e->element[0]))
        return false;
    f->stream_id = e->element[0]->str;
    kv = e->element[1];
    if (kv->type == REDIS_REPLY_NIL) {
        *deleted = true;
        return true;
    }
    if (kv->type != REDIS_REPLY_ARRAY)
        return false;
    for (i = 0; i + 1 < kv->elements; i += 2) {
        const char *name, *value;
        if (!reply_is_string(kv->element[i]) || !reply_is_string(kv->element[i + 1]))
            continue;
        name = kv->element[i]->str;
        value = kv->element[i + 1]->str;
        if (strcmp(name, "request_id") == 0)
            f->request_id = value;
        else if (strcmp(name, "activity_id") == 0)
            f->activity_id = value;
        else if (strcmp(name, "audience") == 0)
            f->audience = value;
        else if (strcmp(name, "test_email") == 0)
            f->test_email = value;
        else if (strcmp(name, "conv") == 0)
            f->conv = value;
        else if (strcmp(name, "created_ms") == 0)
            f->created_ms = value;
    }
    return true;
}

static void on_acked(int err, redisReply *r, void *data)
{
}

/* An entry trimmed while pending has nothing to run: take it off the list. */
static void ack_deleted(struct worker *w, const char *stream_id)
{
    const char *argv[] = {"XACK", w->stream_key, KEYS_GROUP, stream_id};

    log_warn("worker: pending entry %s was deleted from the stream; acknowledged", stream_id);
    if (redis_conn_command(queue_conn(w->queue), 0, on_acked, NULL, (int)ARRAY_SIZE(argv), argv,
                           NULL) != 0)
        log_debug("worker: XACK of %s not sent (redis away); it stays pending", stream_id);
}

/* Starts the entries of one reply array; returns how many it held. */
static size_t take_entries(struct worker *w, const redisReply *entries, bool claimed)
{
    struct job_fields f;
    bool deleted;
    size_t i;

    if (entries->type != REDIS_REPLY_ARRAY)
        return 0;
    for (i = 0; i < entries->elements; i++) {
        if (!parse_entry(entries->element[i], &f, &deleted)) {
            log_warn("worker: unexpected stream entry shape; skipped");
            continue;
        }
        if (!w->history_done && !claimed)
            snprintf(w->history_from, sizeof(w->history_from), "%s", f.stream_id);
        if (find_job(w, f.stream_id))
            continue; /* ours already: a lease that lapsed, or a re-read after a reconnect */
        if (deleted) {
            ack_deleted(w, f.stream_id);
            continue;
        }
        if (claimed)
            log_emit(LOG_LEVEL_INFO, f.request_id, "worker: claimed %s from an idle consumer",
                     f.stream_id);
        worker_job_start(w, &f);
    }
    return entries->elements;
}

static void on_read_retry(uv_timer_t *t)
{
    read_more(container_of(t, struct worker, read_retry));
}

/* A refusal is logged and the read goes on (its error reply retries after a pause). */
static void on_group_created(int err, const char *refusal, void *data)
{
    struct worker *w = data;

    w->reading = false;
    if (err == DG_ERR_PROTOCOL)
        log_warn("worker: XGROUP CREATE: %s", refusal);
    if (!err || err == DG_ERR_PROTOCOL)
        read_more(w);
    check_drained(w);
}

/* On the reader's own connection, as the queue does on its own (group.h). */
static int create_group(struct worker *w)
{
    int err = group_create(w->reader, w->cfg->prefix, on_group_created, w);

    if (!err)
        w->reading = true; /* no read until the group answer is in */
    return err;
}

static void on_read(int err, redisReply *r, void *data)
{
    struct worker *w = data;
    size_t i, n = 0;

    w->reading = false;
    if (err) {
        /* The connection is gone; its return (on_reader_state) reads again. */
        if (err != DG_ERR_CLOSED)
            log_debug("worker: XREADGROUP: %s", dg_strerror(err));
        check_drained(w);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* NOGROUP at first start or after a Redis restart: make the group
         * here rather than wait for the queue's connection to. */
        if (strncmp(r->str, "NOGROUP", 7) == 0 && create_group(w) == 0) {
            check_drained(w);
            return;
        }
        log_warn("worker: XREADGROUP: %s", r->str);
        if (w->state == WORKER_RUNNING)
            uv_timer_start(&w->read_retry, on_read_retry, WORKER_READ_RETRY_MS, 0);
        check_drained(w);
        return;
    }
    if (r->type == REDIS_REPLY_ARRAY)
        for (i = 0; i < r->elements; i++)
            if (r->element[i]->type == REDIS_REPLY_ARRAY && r->element[i]->elements == 2)
                n += take_entries(w, r->element[i]->element[1], false);
    if (!w->history_done && n == 0) {
        w->history_done = true;
        log_debug("worker: own pending entries read; now reading new ones");
    }
    read_more(w);
    check_drained(w);
}

static void read_more(struct worker *w)
{
    char count[24];
    size_t slots = free_slots(w);
    int err;

    if (w->state != WORKER_RUNNING || w->reading || w->claiming || slots == 0 ||
        !redis_conn_ready(w->reader))
        return;
    if (w->claim_due) {
        start_claim(w); /* reads and claims take turns: together they could overfill */
        return;
    }
    snprintf(count, sizeof(count), "%zu", slots);
    if (!w->history_done) {
        const char *argv[] = {"XREADGROUP", "GROUP",   KEYS_GROUP,    w->consumer,    "COUNT",
                              count,        "STREAMS", w->stream_key, w->history_from};
        err = redis_conn_command(w->reader, 0, on_read, w, (int)ARRAY_SIZE(argv), argv, NULL);
    } else {
        const char *argv[] = {
            "XREADGROUP", "GROUP",       KEYS_GROUP, w->consumer,
            "COUNT",      count,         "BLOCK",    DG_STRINGIFY(WORKER_READ_BLOCK_MS),
            "STREAMS",    w->stream_key, ">"};
        err = redis_conn_command(w->reader, WORKER_READ_BLOCK_MS + REDIS_COMMAND_TIMEOUT_MS,
                                 on_read, w, (int)ARRAY_SIZE(argv), argv, NULL);
    }
    if (!err)
        w->reading = true;
}

static void on_reader_id(int err, redisReply *r, void *data)
{
    struct worker *w = data;

    if (!err && r->type == REDIS_REPLY_INTEGER)
        snprintf(w->reader_id, sizeof(w->reader_id), "%lld", r->integer);
}

static void on_reader_state(struct redis_conn *c, bool up, void *data)
{
    struct worker *w = data;
    const char *argv[] = {"CLIENT", "ID"};

    w->reader_id[0] = '\0';
    if (!up) {
        /* Redis went away (both connections go when it restarts): the claim tick waits. */
        w->queue_was_down = true;
        return;
    }
    /*
     * Own pending entries first, on every connect: a read whose reply was
     * lost with the old connection left its entries pending under us, and
     * only we know to look now rather than after WORKER_CLAIM_IDLE_MS.
     * Entries of jobs still held here are skipped by the index.
     */
    w->history_done = false;
    snprintf(w->history_from, sizeof(w->history_from), "0");
    /* Sent before the first read, so it is known whenever a read blocks. */
    if (redis_conn_command(w->reader, 0, on_reader_id, w, 2, argv, NULL) != 0)
        return;
    read_more(w);
}

/* Ends a blocked XREADGROUP at once (it answers nil) so a drain need not wait for BLOCK. */
static void wake_reader(struct worker *w)
{
    const char *argv[] = {"CLIENT", "UNBLOCK", w->reader_id};

    if (!w->reading || !w->reader_id[0] || !w->history_done)
        return;
    if (redis_conn_command(queue_conn(w->queue), 0, on_acked, NULL, 3, argv, NULL) != 0)
        log_debug("worker: CLIENT UNBLOCK not sent; the read ends within its BLOCK time");
}

/* ---- claiming ------------------------------------------------------------- */

static void on_claimed(int err, redisReply *r, void *data)
{
    struct worker *w = data;

    w->claiming = false;
    if (!err && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
        reply_is_string(r->element[0])) {
        snprintf(w->claim_cursor, sizeof(w->claim_cursor), "%s", r->element[0]->str);
        take_entries(w, r->element[1], true);
        /* Redis 7: pending entries whose stream entry is gone, now dropped. */
        if (r->elements >= 3 && r->element[2]->type == REDIS_REPLY_ARRAY &&
            r->element[2]->elements > 0)
            log_warn("worker: %zu pending entries had been deleted from the stream",
                     r->element[2]->elements);
    } else if (!err && r->type == REDIS_REPLY_ERROR) {
        log_warn("worker: XAUTOCLAIM: %s", r->str);
        snprintf(w->claim_cursor, sizeof(w->claim_cursor), "0-0");
    }
    read_more(w);
    check_drained(w);
}

/* Takes idle entries from any consumer, as many as there are free slots. */
static void start_claim(struct worker *w)
{
    size_t slots = free_slots(w);
    char idle[24], count[24];

    w->claim_due = false;
    if (slots == 0 || !queue_ready(w->queue)) {
        read_more(w);
        return;
    }
    snprintf(idle, sizeof(idle), "%llu", (unsigned long long)w->cfg->worker_claim_idle_ms);
    snprintf(count, sizeof(count), "%zu", slots < WORKER_CLAIM_MAX ? slots : WORKER_CLAIM_MAX);
    {
        const char *argv[] = {"XAUTOCLAIM", w->stream_key,   KEYS_GROUP, w->consumer,
                              idle,         w->claim_cursor, "COUNT",    count};
        if (redis_conn_command(queue_conn(w->queue), 0, on_claimed, w, (int)ARRAY_SIZE(argv), argv,
                               NULL) == 0)
            w->claiming = true;
        else
            read_more(w);
    }
}

static void on_renew_tick(uv_timer_t *t);

static void on_claim_tick(uv_timer_t *t)
{
    struct worker *w = container_of(t, struct worker, claim_timer);

    if (w->state != WORKER_RUNNING || w->claiming)
        return;
    if (!queue_ready(w->queue)) {
        w->queue_was_down = true;
        return;
    }
    if (w->queue_was_down) {
        /*
         * Connected (at start, or back after an outage during which no
         * lease was renewed: every job anyone holds now looks idle). Renew
         * ours at once and claim nobody's for a full WORKER_CLAIM_IDLE_MS
         * from now: every live owner reconnects within the reconnect
         * backoff's cap (below a quarter of that) and renews at once, so
         * by then only the jobs of owners that are gone still look idle
         * (docs/worker.md, "Claims after an outage").
         */
        w->queue_was_down = false;
        on_renew_tick(&w->renew_timer);
        w->claim_after = uv_now(w->loop) + w->cfg->worker_claim_idle_ms;
        log_info("worker: connected; claiming from others from %llu ms on",
                 (unsigned long long)w->cfg->worker_claim_idle_ms);
        return;
    }
    if (uv_now(w->loop) < w->claim_after || free_slots(w) == 0)
        return;
    w->claim_due = true;
    if (w->reading)
        wake_reader(w); /* the claim goes out when the read ends */
    else
        start_claim(w);
}

/* ---- leases --------------------------------------------------------------- */

/* Jobs whose entry is still pending under us and not being ended right now. */
static bool holds_lease(const struct job *j)
{
    return !j->lost && (j->step == JOB_BEGIN || j->step == JOB_FETCH || j->step == JOB_FENCE ||
                        j->step == JOB_SEND || j->step == JOB_WAIT || j->step == JOB_REDIS_WAIT);
}

static void on_renewed(int err, const char *const *lost, size_t n_lost, void *data)
{
    struct worker *w = data;
    size_t i;

    w->renewing--;
    if (err)
        log_debug("worker: lease renewal: %s", dg_strerror(err));
    for (i = 0; i < n_lost; i++) {
        struct job *j = find_job(w, lost[i]);
        if (j && holds_lease(j))
            worker_job_lost(j);
    }
    check_drained(w);
}

static void on_renew_tick(uv_timer_t *t)
{
    struct worker *w = container_of(t, struct worker, renew_timer);
    const char *ids[JOB_STORE_MAX_RENEW];
    struct list_node *pos;
    size_t n = 0;

    if (w->renewing > 0 || !queue_ready(w->queue))
        return;
    list_for_each (pos, &w->jobs) {
        struct job *j = container_of(pos, struct job, node);
        if (!holds_lease(j))
            continue;
        ids[n++] = j->f.stream_id;
        if (n == JOB_STORE_MAX_RENEW) {
            if (job_store_renew(queue_conn(w->queue), w->cfg, w->consumer, ids, n, on_renewed, w) ==
                0)
                w->renewing++;
            n = 0;
        }
    }
    if (n > 0 &&
        job_store_renew(queue_conn(w->queue), w->cfg, w->consumer, ids, n, on_renewed, w) == 0)
        w->renewing++;
}

/* ---- life ----------------------------------------------------------------- */

struct worker *worker_create(uv_loop_t *loop, const struct config *cfg, struct queue *queue,
                             struct connector *connector, struct http_client *http,
                             struct metrics *metrics)
{
    struct worker *w = xcalloc(1, sizeof(*w));
    size_t buckets = 2 * (size_t)cfg->worker_concurrency;

    w->loop = loop;
    w->cfg = cfg;
    w->queue = queue;
    w->connector = connector;
    w->http = http;
    w->metrics = metrics;
    /* host:pid, the name of this process's heartbeat too: digestctl pairs the two. */
    procs_self_name(w->consumer, sizeof(w->consumer));
    w->stream_key = keys_stream(cfg->prefix);
    snprintf(w->history_from, sizeof(w->history_from), "0");
    snprintf(w->claim_cursor, sizeof(w->claim_cursor), "0-0");
    w->queue_was_down = true; /* a fresh process waits like one that saw an outage */
    list_init(&w->jobs);
    /* Twice the jobs it can hold, so it never has to grow. */
    hash_table_init(&w->index, buckets > WORKER_INDEX_MIN ? buckets : WORKER_INDEX_MIN);
    backoff_seed(&w->rng);
    snprintf(w->nonce, sizeof(w->nonce), "%016llx", (unsigned long long)backoff_next(&w->rng));
    w->reader = redis_conn_create(loop, cfg, "reader", metrics);
    redis_conn_set_state_cb(w->reader, on_reader_state, w);
    uv_timer_init(loop, &w->read_retry);
    uv_timer_init(loop, &w->claim_timer);
    uv_timer_init(loop, &w->renew_timer);
    w->retention = retention_create(loop, cfg, queue);
    return w;
}

void worker_start(struct worker *w)
{
    uint64_t renew = w->cfg->worker_claim_idle_ms / 3;

    if (renew < WORKER_RENEW_MIN_MS)
        renew = WORKER_RENEW_MIN_MS;
    w->renew_ms = renew;
    redis_conn_start(w->reader);
    uv_timer_start(&w->claim_timer, on_claim_tick, w->cfg->worker_claim_interval_ms,
                   w->cfg->worker_claim_interval_ms);
    uv_timer_start(&w->renew_timer, on_renew_tick, renew, renew);
    retention_start(w->retention);
    log_info("worker %s: up to %u jobs at once, claiming jobs idle over %llu ms", w->consumer,
             w->cfg->worker_concurrency, (unsigned long long)w->cfg->worker_claim_idle_ms);
}

void worker_drain(struct worker *w, worker_cb cb, void *data)
{
    struct list_node *pos, *tmp;

    if (w->state != WORKER_RUNNING)
        return;
    w->state = WORKER_DRAINING;
    w->drained_cb = cb;
    w->drained_data = data;
    uv_timer_stop(&w->claim_timer);
    uv_timer_stop(&w->read_retry);
    /* The lease timer goes on: the jobs still running need their leases. */
    list_for_each_safe (pos, tmp, &w->jobs)
        worker_job_drain(container_of(pos, struct job, node));
    log_info("worker: draining %zu job(s)", w->n_jobs);
    wake_reader(w);
    check_drained(w);
}

void worker_cancel(struct worker *w)
{
    struct list_node *pos, *tmp;

    if (w->state == WORKER_CANCELLED)
        return;
    w->state = WORKER_CANCELLED;
    list_for_each_safe (pos, tmp, &w->jobs)
        worker_job_cancel(container_of(pos, struct job, node));
    check_drained(w);
}

static void part_closed(struct worker *w)
{
    if (--w->open == 0 && w->stopped_cb)
        w->stopped_cb(w, w->stopped_data);
}

static void on_handle_closed(uv_handle_t *h)
{
    part_closed(h->data);
}

static void on_reader_stopped(struct redis_conn *c, void *data)
{
    part_closed(data);
}

static void on_retention_stopped(struct retention *r, void *data)
{
    part_closed(data);
}

void worker_stop(struct worker *w, worker_cb cb, void *data)
{
    uv_handle_t *handles[] = {(uv_handle_t *)&w->read_retry, (uv_handle_t *)&w->claim_timer,
                              (uv_handle_t *)&w->renew_timer};
    size_t i;

    if (w->open > 0 || uv_is_closing(handles[0]))
        return;
    w->stopped_cb = cb;
    w->stopped_data = data;
    w->open = ARRAY_SIZE(handles) + 2; /* and the reader, and the retention */
    for (i = 0; i < ARRAY_SIZE(handles); i++) {
        handles[i]->data = w;
        uv_close(handles[i], on_handle_closed);
    }
    redis_conn_stop(w->reader, on_reader_stopped, w);
    retention_stop(w->retention, on_retention_stopped, w);
}

void worker_free(struct worker *w)
{
    if (!w)
        return;
    redis_conn_free(w->reader);
    retention_free(w->retention);
    hash_table_free(&w->index);
    xfree(w->stream_key);
    xfree(w);
}
