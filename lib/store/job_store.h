/*
 * job_store.h: the Redis side of one job's life in the worker (SPEC §5, §6).
 * Each step is one Lua script, so the audit record, the stream's pending
 * list and the dead-letter stream never disagree: a job is acknowledged
 * (XACK) in the same step that records its end. All steps are idempotent,
 * so a step whose reply was lost can simply be sent again (begin counts an
 * attempt once per attempt token).
 *
 * Every call goes out on the connection given (the queue's command
 * connection) and finishes exactly once (redis.h rules).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common.h"
#include "store/request_status.h"

struct redis_conn;
struct config;

#define JOB_STORE_MAX_RENEW 512 /* ids per job_store_renew call; callers split larger sets */
/*
 * The version of the record fields and scripts, kept in {P}:schema by the
 * fence (never lowered). 1 (or no key): no send fence; 2: results are
 * fenced (send_token, send_consumer, send_ms, late_result_activity_id,
 * late_ms) and the end steps check that the caller holds the job.
 */
#define JOB_STORE_SCHEMA 2

/* A job as it sits on {P}:requests (SPEC §5, docs/store.md). Strings borrowed. */
struct job_fields {
    const char *stream_id; /* the entry's id, e.g. "1700000000000-0" */
    const char *request_id;
    const char *activity_id;
    const char *audience;
    const char *test_email; /* "" when none */
    const char *conv;       /* "<channelId>:<conversation.id>" */
    const char *created_ms;
};

/* What job_store_begin found. Valid during the callback only. */
struct job_begin {
    /*
     * The record's status before this attempt, when had_status (false when
     * the record was missing and has been recreated from the job). ended:
     * that status is delivered, dead or failed, so the job had already
     * ended: the step only acknowledged it, nothing else changed, and the
     * caller must not send anything.
     */
    enum request_status status;
    bool had_status;
    bool ended;
    unsigned attempts;           /* this attempt's number (1 = first) */
    const char *ack_activity_id; /* "" when the acknowledgment card is not known yet */
    /* The conversation reference (n == 0 when it is gone). */
    const char *const *ref_fields;
    const char *const *ref_values;
    size_t n_ref;
};

typedef void (*job_store_begin_cb)(int err, const struct job_begin *b, void *data);
/*
 * recorded: this attempt holds the job and recorded it delivered (now, or
 * in an earlier run whose reply was lost); false when refused: the job
 * was delivered by another attempt, or this attempt no longer holds it
 * (then the result id is kept as late_result_activity_id). ack_activity_id:
 * the record's when recorded, "" otherwise or when none (borrowed for the
 * callback).
 */
typedef void (*job_store_delivered_cb)(int err, bool recorded, const char *ack_activity_id,
                                       void *data);

enum job_fence_answer {
    JOB_FENCE_NOT_OURS = 0, /* another consumer holds the job, or it ended: send nothing */
    JOB_FENCE_SEND,         /* marked as being sent by this attempt: send */
    JOB_FENCE_SEND_UNKNOWN, /* the same, but another process marked a send before and never
                               recorded its end: it may have been delivered (sent again) */
    JOB_FENCE_WAIT,         /* another process marked a send that may still be in flight:
                               ask again after wait_ms */
    JOB_FENCE_LATE,         /* a result was accepted for an attempt that had lost the job
                               (text: its id): record that one, send nothing */
};

/* What job_store_fence answered. Valid during the callback only. */
struct job_fence {
    enum job_fence_answer answer;
    const char *text; /* NOT_OURS: the record's status or "entry deleted"; LATE: the result id */
    uint64_t wait_ms; /* WAIT */
};

typedef void (*job_store_fence_cb)(int err, const struct job_fence *f, void *data);
/*
 * recorded: this attempt wrote the end (now, or in an earlier run of the
 * same step whose reply was lost: the record's attempt_token is this
 * attempt's); false when someone else ended the job (another consumer
 * delivered it, say): then nobody should be told twice.
 */
typedef void (*job_store_dead_cb)(int err, bool recorded, const char *ack_activity_id, void *data);
/* lost: ids no longer pending under consumer (claimed by another, or acknowledged). */
typedef void (*job_store_renew_cb)(int err, const char *const *lost, size_t n_lost, void *data);
/* released: the job was re-queued; false when it was no longer ours. */
typedef void (*job_store_release_cb)(int err, bool released, void *data);

/*
 * Begins an attempt: unless the record says the job ended (then XACK only),
 * status becomes processing, attempts is incremented, started_ms is set
 * once, and the conversation reference is read. attempt_token names this
 * attempt (unique per process, job and try; kept as the record's
 * attempt_token): the same begin sent again after a lost reply finds its
 * token there and does not count the attempt twice.
 */
int job_store_begin(struct redis_conn *conn, const struct config *cfg, const struct job_fields *job,
                    const char *attempt_token, uint64_t now_ms, job_store_begin_cb cb,
                    void *data) WARN_UNUSED;

/*
 * Before a result is posted (docs/worker.md, "Fenced sends"): only when
 * the job's entry is pending under consumer and the record is processing
 * under attempt_token, marks the send (send_token, send_consumer and
 * send_ms by Redis's clock) and resets the entry's idle time, in one step.
 * A send marked before by another process (its token does not start with
 * nonce "/") and not ended may have been delivered: the answer is WAIT
 * until unknown_wait_ms after that mark, then SEND_UNKNOWN. Also records
 * {P}:schema = JOB_STORE_SCHEMA. A caller that cannot get an answer
 * (Redis away) must not post.
 */
int job_store_fence(struct redis_conn *conn, const struct config *cfg, const struct job_fields *job,
                    const char *consumer, const char *attempt_token, const char *nonce,
                    uint64_t unknown_wait_ms, job_store_fence_cb cb, void *data) WARN_UNUSED;

/*
 * The result card was accepted: when this attempt (consumer, attempt_token)
 * holds the job, status delivered, its id and times, XACK; refused
 * otherwise, never overwriting an earlier delivered (job_store_delivered_cb).
 */
int job_store_delivered(struct redis_conn *conn, const struct config *cfg,
                        const struct job_fields *job, const char *consumer,
                        const char *attempt_token, const char *result_activity_id,
                        uint64_t fetched_ms, uint64_t now_ms, job_store_delivered_cb cb,
                        void *data) WARN_UNUSED;

/*
 * The job ends without a result: status (REQUEST_STATUS_DEAD after the
 * attempts ran out, REQUEST_STATUS_FAILED for a final error; any other is
 * DG_ERR_INVALID at submission) with reason as last_error, the job's fields
 * plus reason/attempts/failed_ms appended to {P}:dead, XACK; and when
 * mark_stale, the conversation reference gets stale=1 (the connector said
 * 403/404: the bot is gone from that conversation). Done at most once per
 * job even when sent again, and only while the entry is pending under
 * consumer (else nothing changes and recorded is false).
 */
int job_store_dead(struct redis_conn *conn, const struct config *cfg, const struct job_fields *job,
                   const char *consumer, const char *attempt_token, enum request_status status,
                   const char *reason, unsigned attempts, bool mark_stale, uint64_t now_ms,
                   job_store_dead_cb cb, void *data) WARN_UNUSED;

/*
 * Renews the lease on jobs this consumer still works on: each id still
 * pending under consumer has its idle time reset (XCLAIM … JUSTID, which
 * leaves the delivery count alone), so XAUTOCLAIM elsewhere leaves it be
 * however long its retries take. Ids pending under someone else are not
 * touched and come back in lost.
 */
int job_store_renew(struct redis_conn *conn, const struct config *cfg, const char *consumer,
                    const char *const *ids, size_t n, job_store_renew_cb cb,
                    void *data) WARN_UNUSED;

/*
 * Gives an unfinished job back at shutdown: if still pending under
 * consumer, XACK it and XADD the same fields again (a new id at the end of
 * the stream), and set a processing record back to queued, so that another
 * worker takes it at once instead of after WORKER_CLAIM_IDLE_MS.
 */
int job_store_release(struct redis_conn *conn, const struct config *cfg, const char *consumer,
                      const struct job_fields *job, job_store_release_cb cb,
                      void *data) WARN_UNUSED;
