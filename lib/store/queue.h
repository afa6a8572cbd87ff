/*
 * queue.h: the job queue of digestd on Redis streams (SPEC §5). It owns the
 * command connection (struct redis_conn) and the enqueue script (one atomic
 * round trip: dedup SET NX + conversation reference + audit record + XADD),
 * and has the consumer group created (group.h) on every (re)connect. Key
 * names come from keys.h; docs/store.md describes the whole schema.
 *
 * Writes submitted during one loop iteration go to Redis together, as one
 * script call (at most 128 entries and 256 KiB of arguments each), just
 * before the loop polls again: no added latency, less CPU per job in Redis
 * and here (bench/RESULTS.md).
 * Redis applies them in submission order, so the stream order is the
 * submission order, and each caller still gets its own callback.
 *
 * Lifecycle: create → start → … → stop(cb) → free in or after cb. Calls
 * follow redis.h: nonzero return and no callback, or exactly one callback.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/common.h"
#include "store/history.h"
#include "store/request_status.h"

struct queue;
struct config;
struct metrics;
struct redis_conn;

/* Everything one digest request writes (all strings borrowed). */
struct queue_job {
    const char *request_id;
    const char *conv_key; /* "<channelId>:<conversation.id>" */
    const char *activity_id;
    const char *audience;
    const char *test_email; /* "" when none */
    uint64_t created_ms;
    const char *mode; /* "async": queued on the stream; "sync": recorded as processing only */
    /* conversation reference hash (SPEC §5); a NULL value is stored as "" */
    const char *const *ref_fields;
    const char *const *ref_values;
    size_t n_ref;
};

/*
 * err 0: the job is stored (duplicate=false, request_id = the new id) or the
 * activity was seen before (duplicate=true, request_id = the first id; no job
 * written), possibly by an earlier job of the same batch. Otherwise err is
 * DG_ERR_UNAVAILABLE/TIMEOUT/CLOSED/PROTOCOL for every job of the batch, and
 * Redis holds nothing of them (the script is atomic) — except when the batch
 * had been sent and its reply was lost (a timeout, or the connection dropping
 * under it, which reads UNAVAILABLE too): then it may hold all of them, and a
 * retry answers "duplicate" (so callers treat any error as "maybe stored");
 * and after a PROTOCOL error from the script itself (say a key of the wrong
 * type), since Redis does not undo the commands that ran before the error.
 * request_id is borrowed for the callback only.
 */
typedef void (*queue_enqueue_cb)(int err, const char *request_id, bool duplicate, void *data);
typedef void (*queue_done_cb)(int err, void *data);
/*
 * status: the record's status after the update, when found (false: no
 * record, or none of the five statuses in it; or err).
 */
typedef void (*queue_ack_cb)(int err, bool found, enum request_status status, void *data);
typedef void (*queue_stopped_cb)(struct queue *q, void *data);

struct queue *queue_create(uv_loop_t *loop, const struct config *cfg, struct metrics *metrics);
void queue_start(struct queue *q);
/* Connected, and the group and script are in place. */
bool queue_ready(const struct queue *q);

/*
 * Adds the job to this iteration's batch: one atomic round trip for the
 * batch (EVALSHA, or EVAL once after NOSCRIPT). Fails at submission, with no
 * callback: DG_ERR_UNAVAILABLE while !queue_ready (fast, for a 503),
 * DG_ERR_CLOSED when stopping, DG_ERR_INVALID for a missing field or more
 * than 64 reference pairs, DG_ERR_TOO_LARGE past 64 KiB of arguments. job
 * and its strings are borrowed for the call only (they are copied). The
 * callback never runs inside this call.
 */
int queue_enqueue(struct queue *q, const struct queue_job *job, queue_enqueue_cb cb,
                  void *data) WARN_UNUSED;

/*
 * Refreshes a conversation reference (HSET of the given pairs; the caller
 * includes "stale" and "updated_ms"). Used for activities that queue nothing.
 * It rides in the same batch as the jobs, so it lands in submission order
 * relative to them. Same submission errors as queue_enqueue (it needs the
 * script too). cb gets 0 or DG_ERR_UNAVAILABLE/TIMEOUT/CLOSED/PROTOCOL.
 */
int queue_store_reference(struct queue *q, const char *conv_key, const char *const *fields,
                          const char *const *values, size_t n, queue_done_cb cb,
                          void *data) WARN_UNUSED;

/*
 * Stores the acknowledgment card's id (ack_activity_id) on the audit record
 * of request_id, if it still exists (an expired one is not recreated), and
 * answers the record's status of that moment. It rides in the batch like
 * the rest, after every entry submitted before it. Same submission errors as
 * queue_enqueue. The strings are copied.
 */
int queue_record_ack(struct queue *q, const char *request_id, const char *ack_activity_id,
                     queue_ack_cb cb, void *data) WARN_UNUSED;

/*
 * Counts one request served while Redis is unreachable (history.h), in
 * this minute; the counts are added to their minutes once the connection
 * is back (and at every stats tick while some are left).
 */
void queue_count_offline(struct queue *q, enum history_offline kind);

/*
 * The command connection (borrowed), for modules that send their own
 * commands (requests.c). Such a command goes out before any batch still
 * pending in this iteration: send it from the callback of the write it must
 * follow, never right after submitting that write.
 */
struct redis_conn *queue_conn(struct queue *q);

void queue_stop(struct queue *q, queue_stopped_cb cb, void *data);
void queue_free(struct queue *q);
